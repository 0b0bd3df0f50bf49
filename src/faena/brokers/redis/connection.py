"""Reaching Redis: the broker URL, the client with its reconnect policy, and error wrapping."""

from __future__ import annotations

import importlib
import os
import re
import threading
import weakref
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import redis
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry

from faena.brokers.listeners import RetryListeners
from faena.brokers.redis.wire import CredentialsRefused, Wire, open_wire
from faena.errors import BrokerError, BrokerURLError

_pack_command: Callable[[tuple[str, ...]], bytes] | None
hiredis: Any  # the module, or None without it
try:  # hiredis (the redis extra installs it) packs commands and parses replies in C
    hiredis = importlib.import_module("hiredis")
except ImportError:  # pragma: no cover - without hiredis, redis-py's own path is used
    hiredis = None
    _pack_command = None
else:
    _pack_command = hiredis.pack_command

DEFAULT_PREFIX = "faena"
_PREFIX = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
#: reconnect after a restart or a network blip: 0.1, 0.2, 0.4 ... capped at 2 s, about 20 s
RETRIES = 14
BACKOFF_BASE = 0.05
BACKOFF_CAP = 2.0

T = TypeVar("T")


@dataclass(frozen=True)
class RedisURL:
    """A parsed ``redis://`` / ``rediss://`` broker URL."""

    url: str  # as given
    client_url: str  # for redis-py: faena's own parameters removed
    prefix: str

    @property
    def masked(self) -> str:
        return mask(self.url)

    @property
    def tag(self) -> str:
        """The key prefix with its hash tag: every key lands in one cluster slot."""
        return "{" + self.prefix + "}"


def mask(url: str) -> str:
    """The URL with its password replaced by ``***``."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{user}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def parse_url(url: str) -> RedisURL:
    try:
        parts = urlsplit(url)
        _ = parts.port  # raises on a bad port
    except ValueError as exc:
        raise BrokerURLError(
            f"broker URL {mask(url)!r} is not valid ({exc}); use redis://HOST:6379/0"
        ) from exc
    if parts.scheme not in ("redis", "rediss"):
        raise BrokerURLError(f"broker URL {mask(url)!r} is not a redis:// or rediss:// URL")
    query = parse_qsl(parts.query, keep_blank_values=True)
    prefix = DEFAULT_PREFIX
    rest = []
    for key, value in query:
        if key == "prefix":
            prefix = value
        else:
            rest.append((key, value))
    if not _PREFIX.match(prefix):
        raise BrokerURLError(
            f"broker URL {mask(url)!r} has prefix {prefix!r}; use 1-64 letters, digits, "
            f"'_', '-', '.', ':'"
        )
    client_url = urlunsplit(parts._replace(query=urlencode(rest)))
    return RedisURL(url, client_url, prefix)


def retry_policy() -> Retry:
    return Retry(ExponentialBackoff(cap=BACKOFF_CAP, base=BACKOFF_BASE), RETRIES)


def make_client(target: RedisURL, *, retry: bool = True, **options: Any) -> Any:
    """A redis-py client (strings decoded) that reconnects with backoff on its own."""
    try:
        return redis.Redis.from_url(
            target.client_url,
            decode_responses=True,
            retry=retry_policy() if retry else Retry(ExponentialBackoff(), 0),
            retry_on_error=[RedisConnectionError, RedisTimeoutError],
            socket_connect_timeout=5.0,
            health_check_interval=30,
            **options,
        )
    except (ValueError, TypeError, RedisError) as exc:
        raise BrokerURLError(
            f"broker URL {target.masked!r} is not usable by redis-py ({exc}); "
            f"use redis://[:PASSWORD@]HOST:6379/DB?prefix=NAME"
        ) from exc


def describe(target: RedisURL, exc: BaseException) -> str:
    if isinstance(exc, CredentialsRefused):
        return (
            f"Redis at {target.masked} refused faena's credentials ({exc}); put the right "
            f"user and password in the broker URL: redis://[USER]:PASSWORD@HOST:6379/0"
        )
    if isinstance(exc, RedisConnectionError | RedisTimeoutError):
        return (
            f"cannot reach Redis at {target.masked} ({exc}); start redis-server there, or "
            f"point FAENA_BROKER_URL (or the broker URL given to faena) at a running Redis"
        )
    if isinstance(exc, ResponseError) and "unknown command" in str(exc) and "FCALL" in str(exc):
        return (
            f"Redis at {target.masked} has no Redis Functions ({exc}); faena's Redis broker "
            f"needs Redis 7.0 or newer: upgrade the server"
        )
    return f"Redis at {target.masked} failed: {exc}"


@contextmanager
def wrapped(target: RedisURL) -> Iterator[None]:
    """Turn redis-py errors into :class:`faena.errors.BrokerError` with the cause."""
    try:
        yield
    except RedisError as exc:
        raise BrokerError(describe(target, exc)) from exc


def call(target: RedisURL, fn: Callable[[], T]) -> T:
    with wrapped(target):
        return fn()


class FunctionCall:
    """One library function bound to its keys and leading arguments, packed once."""

    def __init__(self, function: str, library_code: str, head: Sequence[str]) -> None:
        self.function = function
        self._words = ("FCALL", function, *head)
        self._count = len(self._words)
        self._head = _bulk(self._words)
        self._load = _load_command(library_code)  # one copy for every function of a library

    def command(self, args: Sequence[str]) -> bytes:
        if _pack_command is not None:
            return _pack_command((*self._words, *args))
        return b"*%d\r\n%s%s" % (self._count + len(args), self._head, _bulk(args))

    @property
    def load_command(self) -> bytes:
        return self._load


@cache
def _load_command(library_code: str) -> bytes:
    return b"*4\r\n" + _bulk(["FUNCTION", "LOAD", "REPLACE", library_code])


def _function_missing(exc: ResponseError) -> bool:
    return str(exc).startswith("Function not found")


class Link:
    """Runs library functions on dedicated connections, one per concurrent caller.

    This is the hot path (every enqueue, claim and finish), so it skips the pool's per-call
    checkout checks: connections (:mod:`faena.brokers.redis.wire`) wait in a free list, a
    caller takes one for one command and puts it back. On a lost connection the command is
    retried with exponential backoff (the connection reconnects on its next use); a server
    that lost its functions (a restart without persistence, ``FUNCTION FLUSH``) gets the
    library again.
    """

    def __init__(self, client: Any) -> None:
        pool = client.connection_pool
        kwargs = dict(pool.connection_kwargs)
        kwargs["retry"] = Retry(ExponentialBackoff(), 0)  # retried here, not inside
        self._connection_class = pool.connection_class
        self._kwargs = kwargs
        self._free: list[Wire] = []
        self._lock = threading.Lock()
        self._retry = retry_policy()
        self.retried = RetryListeners()  # told of every retry (a worker notes the outage)
        # A forked child must not share its parent's sockets: it starts with none.
        ref = weakref.ref(self)
        os.register_at_fork(after_in_child=lambda: _forget_connections(ref))

    def run(
        self,
        call: FunctionCall,
        args: Sequence[str] | Callable[[], Sequence[str]],
        meanwhile: Callable[[], object] | None = None,
    ) -> Any:
        """Call a function; ``args`` may be a function, called again for every retry, so
        that times in them (a lease deadline) are taken when the call is sent, not before an
        outage. ``meanwhile`` runs once, after the command is first sent and while Redis
        works on it."""
        try:
            wire = self._free.pop()
        except IndexError:
            wire = open_wire(self._connection_class, self._kwargs, hiredis)
        pending = [meanwhile] if meanwhile is not None else []

        def attempt() -> Any:
            command = call.command(args() if callable(args) else args)
            return self._once(wire, call, command, pending)

        try:
            try:
                return attempt()  # the usual case, without the retry loop's own calls
            except (RedisConnectionError, RedisTimeoutError):
                wire.disconnect()  # a dropped idle connection: reconnecting is no outage yet

            def failed(error: BaseException) -> None:  # the reconnected call failed too
                wire.disconnect()
                self.retried(error)

            return self._retry.call_with_retry(attempt, failed)
        finally:
            self._free.append(wire)

    @staticmethod
    def _once(
        wire: Wire, call: FunctionCall, command: bytes, pending: list[Callable[[], object]]
    ) -> Any:
        wire.send(command)
        while pending:
            pending.pop()()
        reply = wire.read()
        if isinstance(reply, RedisError):  # an error reply (LOADING: retried as a lost link)
            if not (isinstance(reply, ResponseError) and _function_missing(reply)):
                raise reply
            wire.send(call.load_command)
            loaded = wire.read()
            if isinstance(loaded, RedisError):
                raise loaded
            wire.send(command)
            reply = wire.read()
            if isinstance(reply, RedisError):
                raise reply
        return reply

    def close(self) -> None:
        with self._lock:
            while self._free:
                self._free.pop().disconnect()


def _forget_connections(ref: weakref.ref[Link]) -> None:
    link = ref()
    if link is not None:
        link._free = []


def _bulk(args: Sequence[str]) -> bytes:
    """Arguments as RESP bulk strings (a leaner twin of redis-py's packer, for text)."""
    parts: list[bytes] = []
    append = parts.append
    for arg in args:
        data = arg.encode("utf-8")
        append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(parts)
