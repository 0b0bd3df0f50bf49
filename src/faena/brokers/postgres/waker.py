"""Wake-ups over LISTEN/NOTIFY, on a descriptor that stays the same across reconnects.

A background thread holds a dedicated autocommit connection that LISTENs on the schema's
channel and writes one byte to a pipe for each burst of notifications; ``fileno()`` is the
pipe's read end. When the server goes away the thread reconnects with backoff, LISTENs
again and wakes the worker once, since notifications sent meanwhile are lost.
"""

from __future__ import annotations

import contextlib
import logging
import os
import selectors
import threading
import time

import psycopg

from faena.brokers.postgres.database import Conn, Database

log = logging.getLogger("faena.brokers.postgres")

_IDLE_CHECK = 5.0  # seconds between liveness checks of an idle LISTEN connection
_MAX_DELAY = 2.0


class ListenWaker:
    def __init__(self, db: Database) -> None:
        self._db = db
        self._r, self._w = os.pipe()
        os.set_blocking(self._r, False)
        os.set_blocking(self._w, False)
        self._stop_r, self._stop_w = os.pipe()
        self._closed = threading.Event()
        self._listening = threading.Event()
        self._conn: Conn | None = self._listen()  # fail here, loudly, if the server is away
        self._thread = threading.Thread(target=self._loop, name="faena-pg-waker", daemon=True)
        self._thread.start()

    # the Waker protocol --------------------------------------------------------------
    def fileno(self) -> int:
        return self._r

    def drain(self) -> None:
        with contextlib.suppress(OSError):
            while os.read(self._r, 4096):
                pass

    def close(self) -> None:
        if self._closed.is_set():
            return
        self._closed.set()
        with contextlib.suppress(OSError):
            os.write(self._stop_w, b"\x01")
        self._thread.join(timeout=5)
        for fd in (self._r, self._w, self._stop_r, self._stop_w):
            with contextlib.suppress(OSError):
                os.close(fd)

    def wait_listening(self, timeout: float) -> bool:
        """Whether the waker listens (again, after a reconnect) within ``timeout``."""
        return self._listening.wait(timeout)

    # the thread ----------------------------------------------------------------------
    def _listen(self) -> Conn:
        conn = self._db.connect()
        try:
            conn.execute(f'LISTEN "{self._db.config.channel}"')
        except BaseException:
            conn.close()
            raise
        self._listening.set()
        return conn

    def _poke(self) -> None:
        with contextlib.suppress(OSError):  # already readable, or closed
            os.write(self._w, b"\x01")

    def _loop(self) -> None:
        delay = 0.05
        while not self._closed.is_set():
            if self._conn is None:
                try:
                    self._conn = self._listen()
                except Exception as exc:
                    log.warning("postgres.waker.reconnect_failed", extra={"error": str(exc)})
                    if self._sleep(delay):
                        break
                    delay = min(delay * 2, _MAX_DELAY)
                    continue
                delay = 0.05
                self._poke()  # notifications may have been missed while away
            try:
                self._wait(self._conn)
            except (psycopg.Error, OSError) as exc:
                log.warning("postgres.waker.lost", extra={"error": str(exc)})
                self._listening.clear()
                with contextlib.suppress(Exception):
                    self._conn.close()
                self._conn = None
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.close()

    def _sleep(self, seconds: float) -> bool:
        """Sleep unless closed meanwhile; whether the waker was closed."""
        return self._closed.wait(seconds)

    def _wait(self, conn: Conn) -> None:
        """Wait for notifications on ``conn`` until closed; raise if the server is lost."""
        with selectors.DefaultSelector() as sel:
            sel.register(conn.fileno(), selectors.EVENT_READ)
            sel.register(self._stop_r, selectors.EVENT_READ)
            last_check = time.monotonic()
            while not self._closed.is_set():
                events = sel.select(timeout=_IDLE_CHECK)
                if any(key.fd == self._stop_r for key, _ in events):
                    return
                if events:
                    got = False
                    for _ in conn.notifies(timeout=0):
                        got = True
                    if got:
                        self._poke()
                    if conn.closed or conn.broken:
                        raise psycopg.OperationalError("the LISTEN connection was closed")
                elif time.monotonic() - last_check >= _IDLE_CHECK:
                    conn.execute("SELECT 1")  # raises if the server went away silently
                    last_check = time.monotonic()
