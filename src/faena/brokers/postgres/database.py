"""Connections to PostgreSQL: a pool, driver errors wrapped, and recovery after a restart.

Every broker call borrows one autocommit connection and sends one statement (a function
call for the multi-step ones), so each call is one transaction and, mostly, one round trip.
When the server restarts, pooled connections break; a call that fails with an
``OperationalError`` is tried again on a fresh connection with exponential backoff for up to
``retry_seconds``. A call whose commit was already done when the connection broke can thus run
twice: a second claim leaves its jobs to lease expiry, a second finish reports ``False``;
at-least-once holds either way.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TypeVar

import psycopg
from psycopg.rows import TupleRow
from psycopg_pool import ConnectionPool

from faena.brokers.postgres.config import PgConfig
from faena.errors import BrokerError, FaenaError

T = TypeVar("T")
Conn = psycopg.Connection[TupleRow]
log = logging.getLogger("faena.brokers.postgres")

CONNECT_TIMEOUT = 5
#: how long a call keeps trying while the server is away (a restart takes seconds)
RETRY_SECONDS = 60.0
_FIRST_DELAY = 0.02
_MAX_DELAY = 1.0


def unreachable(config: PgConfig, exc: BaseException) -> str:
    return (
        f"cannot connect to PostgreSQL at {config.display_url}: {exc}".rstrip()
        + "; check that the server runs and accepts TCP connections at that host and port, "
        "that the database and user exist and the password is right, or point "
        "FAENA_BROKER_URL at the right server"
    )


class Database:
    """A lazily opened pool of autocommit connections to one server."""

    def __init__(self, config: PgConfig, *, retry_seconds: float = RETRY_SECONDS) -> None:
        self.config = config
        self.retry_seconds = retry_seconds
        self._pool: ConnectionPool | None = None
        self._lock = threading.Lock()
        self._closed = False

    def connect(self) -> Conn:
        """A new autocommit connection of its own (the caller closes it)."""
        try:
            return psycopg.connect(
                self.config.conninfo, autocommit=True, connect_timeout=CONNECT_TIMEOUT
            )
        except psycopg.Error as exc:
            raise BrokerError(unreachable(self.config, exc)) from exc

    def pool(self) -> ConnectionPool:
        if self._pool is not None:
            return self._pool
        with self._lock:
            if self._closed:
                raise BrokerError(f"the broker for {self.config.display_url} is closed")
            if self._pool is None:
                self.connect().close()  # fail fast, with the server's own reason
                pool = ConnectionPool(
                    self.config.conninfo,
                    min_size=1,
                    max_size=self.config.pool_size,
                    kwargs={"autocommit": True, "connect_timeout": CONNECT_TIMEOUT},
                    timeout=CONNECT_TIMEOUT * 2,
                    name=f"faena-{self.config.schema}",
                    open=False,
                )
                pool.open(wait=False)
                self._pool = pool
        return self._pool

    def run(self, what: str, fn: Callable[[Conn], T]) -> T:
        """``fn`` on a pooled connection; tried again while the server is unreachable."""
        deadline = time.monotonic() + self.retry_seconds
        delay = _FIRST_DELAY
        while True:
            try:
                with self.pool().connection() as conn:
                    return fn(conn)
            except FaenaError:
                raise
            except psycopg.OperationalError as exc:
                if self._closed or time.monotonic() + delay > deadline:
                    raise BrokerError(
                        f"PostgreSQL {what} failed at {self.config.display_url} and kept "
                        f"failing for {self.retry_seconds:.0f} s: {exc}"
                    ) from exc
                log.warning(
                    "postgres.retry",
                    extra={"event": "postgres.retry", "operation": what, "error": str(exc)},
                )
                time.sleep(delay)
                delay = min(delay * 2, _MAX_DELAY)
            except psycopg.Error as exc:
                raise BrokerError(
                    f"PostgreSQL {what} failed at {self.config.display_url}: {exc}"
                ) from exc

    def close(self) -> None:
        with self._lock:
            self._closed = True
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.close()
