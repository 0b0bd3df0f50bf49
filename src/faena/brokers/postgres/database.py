"""Connections to PostgreSQL: a pool, driver errors wrapped, and recovery after a restart.

Every broker call borrows one autocommit connection and sends one statement (a function
call for the multi-step ones), so each call is one transaction and, mostly, one round trip.
The hot statements (a worker's exchange, enqueue) skip psycopg's query conversion and
parameter adaptation: they are prepared once on each connection and run through libpq with
their parameters already as text (:class:`Prepared`): a worker's exchange costs its process
(bound by one GIL) about a quarter less CPU than through ``Connection.execute``.

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
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar, cast

import psycopg
from psycopg import pq
from psycopg.adapt import Transformer
from psycopg.rows import TupleRow
from psycopg_pool import ConnectionPool

from faena.brokers.listeners import RetryListeners
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


@dataclass(frozen=True, slots=True)
class Prepared:
    """A statement with ``$n`` placeholders, prepared under ``name`` on each connection the
    first time it runs there. Its parameters are given as text (``bytes``, ``None`` for NULL)
    in the connection's encoding, so nothing is adapted per call."""

    name: bytes
    sql: bytes


def array_literal(items: Sequence[str]) -> str:
    """``items`` as the text of a PostgreSQL array (each element quoted)."""
    quoted = (i.replace("\\", "\\\\").replace('"', '\\"') for i in items)
    return "{" + ",".join(f'"{q}"' for q in quoted) + "}"


_DONE = (pq.ExecStatus.TUPLES_OK, pq.ExecStatus.COMMAND_OK)


def _raise_for(conn: Conn, result: pq.abc.PGresult) -> None:
    if result.status in _DONE:
        return
    if conn.pgconn.status != pq.ConnStatus.OK:  # the connection broke: worth a retry
        message = result.error_message.decode(errors="replace").strip()
        raise psycopg.OperationalError(message or "the connection to the server was lost")
    raise psycopg.errors.error_from_result(result, encoding=conn.info.encoding)


def _dropped(result: pq.abc.PGresult) -> bool:
    """Whether a statement failed because its prepared statement is gone (SQLSTATE 26000,
    invalid_sql_statement_name)."""
    return (
        result.status == pq.ExecStatus.FATAL_ERROR
        and result.error_field(pq.DiagnosticField.SQLSTATE) == b"26000"
    )


class Database:
    """A lazily opened pool of autocommit connections to one server."""

    def __init__(self, config: PgConfig, *, retry_seconds: float = RETRY_SECONDS) -> None:
        self.config = config
        self.retry_seconds = retry_seconds
        self._pool: ConnectionPool | None = None
        self._lock = threading.Lock()
        self._closed = False
        # the Prepared names made on each connection (a connection gone is forgotten)
        self._prepared: weakref.WeakKeyDictionary[Conn, set[bytes]] = weakref.WeakKeyDictionary()
        self._prepared_lock = threading.Lock()
        self.retried = RetryListeners()  # told of every retry (a worker notes the outage)

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
                # getconn/putconn rather than connection(), whose ``with conn`` runs
                # psycopg's commit logic at every call for nothing (autocommit); putconn
                # rolls back a transaction left open and drops a broken connection
                pool = self.pool()
                conn = pool.getconn()
                try:
                    return fn(conn)
                finally:
                    pool.putconn(conn)
            except FaenaError:
                raise
            except psycopg.OperationalError as exc:
                if self._closed or time.monotonic() + delay > deadline:
                    raise BrokerError(
                        f"PostgreSQL {what} failed at {self.config.display_url} and kept "
                        f"failing for {self.retry_seconds:.0f} s: {exc}"
                    ) from exc
                if delay > _FIRST_DELAY:  # the fresh connection failed too: an outage
                    self.retried(exc)
                # a worker listening logs the outage once; a line per retry is for debugging
                log.log(
                    logging.DEBUG if self.retried else logging.WARNING,
                    "postgres.retry",
                    extra={"event": "postgres.retry", "operation": what, "error": str(exc)},
                )
                time.sleep(delay)
                delay = min(delay * 2, _MAX_DELAY)
            except psycopg.Error as exc:
                raise BrokerError(
                    f"PostgreSQL {what} failed at {self.config.display_url}: {exc}"
                ) from exc

    def execute(
        self, conn: Conn, statement: Prepared, params: Sequence[bytes | None]
    ) -> list[tuple[Any, ...]]:
        """Run ``statement`` on ``conn`` (one of this pool's, idle, in autocommit) through
        libpq; its rows as tuples, loaded as psycopg would. Errors are psycopg's: a broken
        connection is an ``OperationalError``, which :meth:`run` tries again."""
        pgconn = conn.pgconn
        with self._prepared_lock:
            names = self._prepared.get(conn)
            if names is None:
                names = self._prepared[conn] = set()
        if statement.name not in names:
            _raise_for(conn, pgconn.prepare(statement.name, statement.sql))
            names.add(statement.name)
        # libpq reads None as NULL (as psycopg's own calls rely on); waits without the GIL
        result = pgconn.exec_prepared(statement.name, cast("Sequence[bytes]", params))
        if _dropped(result):
            # psycopg sends DEALLOCATE ALL after a rollback of its own on a connection where
            # it prepared statements (an operator's call that was refused, raising in its
            # transaction): ours went with it. Prepared again, the call runs as it would have
            _raise_for(conn, pgconn.prepare(statement.name, statement.sql))
            result = pgconn.exec_prepared(statement.name, cast("Sequence[bytes]", params))
        _raise_for(conn, result)
        if not result.ntuples:
            return []
        tx = Transformer(conn)
        tx.set_pgresult(result)
        return tx.load_rows(0, result.ntuples, tuple)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.close()
