"""The hot path's connections: a socket faena owns, with a hiredis reader.

Every enqueue, claim and finish is one ``FCALL``. Through redis-py's client each call would
pay for a pool checkout, a health check and its parser's bookkeeping; here a command goes
straight into the socket and its reply comes out of a hiredis ``Reader``. faena opens the
socket itself from the settings redis-py parsed out of the URL (``ConnectionPool``'s public
``connection_kwargs``), so it reads no private attribute of redis-py. What this module does
not speak (TLS, a unix socket, RESP3, a credential provider) goes through redis-py's own
connection and its public ``send_packed_command`` / ``read_response``: see :func:`open_wire`.

Socket errors become redis-py's ``ConnectionError`` / ``TimeoutError`` (and a reply
``LOADING`` its ``BusyLoadingError``), so the caller's retry reconnects as it would with
redis-py's own connection.
"""

from __future__ import annotations

import socket
from collections.abc import Mapping
from typing import Any, Protocol

from redis.exceptions import (
    AuthenticationError,
    BusyLoadingError,
    ReadOnlyError,
    RedisError,
    ResponseError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

#: redis-py settings that change the connection's handshake or its bytes on the wire, which
#: this module does not speak: set, they send the connection through redis-py. (Everything
#: else redis-py keeps there concerns redis-py itself: its retries, health checks, reply
#: decoding, which faena does on its own here.)
_NOT_SPOKEN = ("credential_provider", "redis_connect_func")


class CredentialsRefused(RedisError):
    """Redis refused the URL's credentials: trying again cannot help (redis-py's
    ``AuthenticationError`` is a ``ConnectionError``, which the caller's retry would repeat)."""


class Wire(Protocol):
    def send(self, data: bytes) -> None: ...
    def read(self) -> Any: ...
    def disconnect(self) -> None: ...


def _reply_error(message: str) -> RedisError:
    """An error reply as redis-py raises it: its class by the reply's code, without ``ERR``."""
    if message.startswith("LOADING"):
        return BusyLoadingError(message)
    if message.startswith("READONLY"):
        return ReadOnlyError(message)
    if message.startswith(("NOAUTH", "WRONGPASS")):
        return CredentialsRefused(message)
    return ResponseError(message[4:] if message.startswith("ERR ") else message)


def plain_tcp(kwargs: Mapping[str, Any], connection_class: type) -> bool:
    """Whether faena's own socket can stand in for redis-py's connection with these settings."""
    from redis.connection import Connection

    if connection_class is not Connection:  # TLS, unix sockets, ...
        return False
    if kwargs.get("protocol") not in (None, 2, "2"):
        return False
    return all(kwargs.get(k) is None for k in _NOT_SPOKEN)


class SocketWire:
    """One TCP connection to Redis that faena opens, authenticates and reads itself."""

    __slots__ = ("_hiredis", "_kwargs", "_reader", "_sock")

    def __init__(self, kwargs: Mapping[str, Any], hiredis: Any) -> None:
        self._kwargs = kwargs
        self._hiredis = hiredis
        self._reader: Any = None
        self._sock: socket.socket | None = None

    def _connect(self) -> socket.socket:
        kw = self._kwargs
        address = (kw.get("host") or "localhost", int(kw.get("port") or 6379))
        try:
            sock = socket.create_connection(address, timeout=kw.get("socket_connect_timeout"))
        except TimeoutError as exc:
            raise RedisTimeoutError(f"timeout connecting to Redis at {address}: {exc}") from exc
        except OSError as exc:
            raise RedisConnectionError(f"error connecting to Redis at {address}: {exc}") from exc
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if kw.get("socket_keepalive"):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
            for option, value in (kw.get("socket_keepalive_options") or {}).items():
                sock.setsockopt(socket.IPPROTO_TCP, option, value)
        sock.settimeout(kw.get("socket_timeout"))
        self._sock = sock
        # a new reader for each socket: a half-read reply of an old one goes with it
        self._reader = self._hiredis.Reader(encoding="utf-8", replyError=_reply_error)
        try:
            self._handshake()
        except BaseException:
            self.disconnect()
            raise
        return sock

    def _handshake(self) -> None:
        kw = self._kwargs
        password, username = kw.get("password"), kw.get("username")
        if password is not None:
            self._command("AUTH", *([username] if username else []), password)
        if kw.get("client_name"):
            self._command("CLIENT", "SETNAME", kw["client_name"])
        if kw.get("db"):
            self._command("SELECT", str(kw["db"]))

    def _command(self, *words: str) -> None:
        self.send(_pack(words))
        reply = self.read()
        if isinstance(reply, RedisError):
            raise reply

    def send(self, data: bytes) -> None:
        sock = self._sock or self._connect()
        try:
            sock.sendall(data)
        except OSError as exc:
            raise self._lost("writing to", exc) from exc

    def read(self) -> Any:
        reader, sock = self._reader, self._sock
        if sock is None:
            raise RedisConnectionError("no connection to Redis to read a reply from")
        reply = reader.gets()
        while reply is False:
            try:
                data = sock.recv(65536)
            except OSError as exc:
                raise self._lost("reading from", exc) from exc
            if not data:
                raise self._lost("reading from", None)
            reader.feed(data)
            reply = reader.gets()
        return reply

    def disconnect(self) -> None:
        sock, self._sock = self._sock, None
        if sock is not None:
            sock.close()

    def _lost(self, doing: str, exc: OSError | None) -> RedisError:
        """Drop the connection; the error that makes the caller's retry reconnect."""
        self.disconnect()
        if isinstance(exc, TimeoutError):
            return RedisTimeoutError(f"timeout {doing} Redis: {exc}")
        if exc is None:
            return RedisConnectionError(f"Redis closed the connection while {doing} it")
        return RedisConnectionError(f"error {doing} Redis: {exc}")


class ClientWire:
    """redis-py's own connection, through its public methods (TLS, unix sockets, no hiredis)."""

    __slots__ = ("_conn",)

    def __init__(self, conn: Any) -> None:
        self._conn = conn

    def send(self, data: bytes) -> None:
        try:
            self._conn.send_packed_command([data])
        except AuthenticationError as exc:  # raised by its connect
            raise CredentialsRefused(str(exc)) from exc

    def read(self) -> Any:
        try:
            return self._conn.read_response()
        except ResponseError as exc:  # returned, as hiredis's reader returns error replies
            return exc

    def disconnect(self) -> None:
        self._conn.disconnect()


def open_wire(connection_class: type, kwargs: Mapping[str, Any], hiredis: Any) -> Wire:
    """faena's own socket where it speaks the settings, else redis-py's connection."""
    if hiredis is not None and plain_tcp(kwargs, connection_class):
        return SocketWire(kwargs, hiredis)
    return ClientWire(connection_class(**kwargs))


def _pack(words: tuple[str, ...]) -> bytes:
    parts = [b"*%d\r\n" % len(words)]
    for word in words:
        data = word.encode("utf-8")
        parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(parts)
