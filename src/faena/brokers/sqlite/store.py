"""SQLite connections, pragmas and migrations for the SQLite broker."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from importlib import resources
from pathlib import Path
from urllib.parse import quote

from faena.errors import BrokerError, BrokerURLError, SchemaError, StoreNotFoundError

APP_MARKER = "faena"
BUSY_TIMEOUT_MS = 30_000
WORKER_CHECKPOINT_PAGES = 10_000


def migrations() -> list[tuple[int, str]]:
    folder = resources.files("faena.brokers.sqlite") / "migrations"
    found = []
    for entry in folder.iterdir():
        name = entry.name
        if name.endswith(".sql"):
            found.append((int(name.split("_", 1)[0]), entry.read_text(encoding="utf-8")))
    return sorted(found)


SCHEMA_VERSION = max(v for v, _ in migrations())


def _use_wal(conn: sqlite3.Connection) -> None:
    """Put the database in WAL mode. A new database switches to it once, and the switch
    needs the file to itself: when several processes open a new database at once (the
    workers of ``--processes``), SQLite answers "database is locked" at once instead of
    waiting in its busy handler. So try again, for as long as the busy timeout."""
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    pause = 0.001
    while True:
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            busy = exc.sqlite_errorcode == sqlite3.SQLITE_BUSY
            if not busy or time.monotonic() + pause > deadline:
                raise
        time.sleep(pause)
        pause = min(pause * 2, 0.05)


class Store:
    """Thread-local connections to one database file.

    ``durable`` connections commit with ``synchronous=FULL`` (fsync of the WAL at every commit);
    ``fast`` ones with ``synchronous=NORMAL``. In WAL mode a FULL commit makes every earlier
    commit durable too, so a job is on disk when ``enqueue`` returns, while a power cut can at
    worst undo the last claims and completions, which then run again (at-least-once).
    """

    def __init__(self, path: str, *, sync: str = "enqueue", existing: bool = False) -> None:
        """``existing``: open the database file only if it exists (commands that read or act
        on jobs never create a store); otherwise the file is created when missing."""
        if sync not in ("enqueue", "full", "normal"):
            raise BrokerURLError(
                f"sqlite broker URL has sync={sync!r}; use ?sync=enqueue (the default), full "
                f"or normal"
            )
        self.path = path
        self.sync = sync
        self.existing = existing
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._all_lock = threading.Lock()
        # threads of one process take turns here instead of in SQLite's busy handler, which
        # sleeps in steps of milliseconds; processes still meet at SQLite's write lock
        self._write_lock = threading.Lock()

    def _check_path(self) -> None:
        """Refuse a file faena would have to create in a folder that does not exist, or
        (``existing``) a file that does not exist: a typo in a path creates nothing."""
        path = Path(self.path)
        if self.existing and not path.is_file():
            raise StoreNotFoundError(
                f"no faena store at {path.absolute()} (no such file; a worker, faena migrate or "
                f"faena enqueue creates it, this command does not); point --broker / "
                f"FAENA_BROKER_URL at the store your workers use (sqlite:///path/to/faena.db), "
                f"or pass --app so its broker is used"
            )
        parent = path.absolute().parent
        if not parent.is_dir():
            raise StoreNotFoundError(
                f"cannot create the SQLite store {path.absolute()}: the folder {parent} does "
                f"not exist; create it (mkdir -p {parent}) or fix the path in the broker URL"
            )

    def exists(self) -> bool:
        """Whether the file exists and holds faena's tables (opened read-only: nothing is
        created, not even the WAL files of a database that has none)."""
        if not Path(self.path).is_file():
            return False
        try:
            conn = sqlite3.connect(f"file:{quote(self.path)}?mode=ro", uri=True)
        except sqlite3.Error:
            return False
        try:
            found = conn.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'faena_jobs'"
            ).fetchone()
        except sqlite3.DatabaseError:  # not a database at all: setup says so, with the fix
            return True
        finally:
            conn.close()
        return found is not None

    def _open(self, synchronous: str) -> sqlite3.Connection:
        self._check_path()
        try:
            conn = sqlite3.connect(
                f"file:{quote(self.path)}?mode={'rw' if self.existing else 'rwc'}",
                isolation_level=None,
                timeout=BUSY_TIMEOUT_MS / 1000,
                check_same_thread=False,
                uri=True,
            )
            _use_wal(conn)
            conn.execute(f"PRAGMA synchronous={synchronous}")
            conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
            if synchronous == "NORMAL":
                # workers' commits: checkpoint the WAL less often (every ~40 MiB, not ~4 MiB)
                conn.execute(f"PRAGMA wal_autocheckpoint={WORKER_CHECKPOINT_PAGES}")
            conn.execute("PRAGMA foreign_keys=ON")
            # a pipeline step skipped by the hand-off trigger hands off in turn
            conn.execute("PRAGMA recursive_triggers=ON")
        except sqlite3.OperationalError as exc:  # locked, unreadable: the file may be fine
            raise BrokerError(f"cannot open SQLite database {self.path}: {exc}") from exc
        except sqlite3.DatabaseError as exc:
            raise SchemaError(
                f"{self.path} is not an SQLite database faena can open ({exc}); point the broker "
                f"URL at a new file (sqlite:///path/to/faena.db) or at a faena database"
            ) from exc
        except sqlite3.Error as exc:
            raise BrokerError(f"cannot open SQLite database {self.path}: {exc}") from exc
        with self._all_lock:
            self._all.append(conn)
        return conn

    def conn(self, durable: bool) -> sqlite3.Connection:
        name = "durable" if durable else "fast"
        conn: sqlite3.Connection | None = getattr(self._local, name, None)
        if conn is None:
            if self.sync == "full":
                level = "FULL"
            elif self.sync == "normal":
                level = "NORMAL"
            else:
                level = "FULL" if durable else "NORMAL"
            conn = self._open(level)
            setattr(self._local, name, conn)
        return conn

    @contextmanager
    def write(self, durable: bool = False) -> Iterator[sqlite3.Connection]:
        """One write transaction (``BEGIN IMMEDIATE``: takes the write lock up front)."""
        conn = self.conn(durable)
        with self._write_lock:
            try:
                conn.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise BrokerError(f"SQLite {self.path}: cannot start a transaction: {exc}") from exc
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            try:
                conn.execute("COMMIT")
            except sqlite3.Error as exc:
                conn.execute("ROLLBACK")
                raise BrokerError(f"SQLite {self.path}: commit failed: {exc}") from exc

    def write_one(self, sql: str, params: Sequence[object], durable: bool = False) -> int:
        """One statement as a transaction of its own (autocommit: no BEGIN and COMMIT round;
        a write statement takes the write lock when it starts, waiting as BEGIN IMMEDIATE
        does); the rows it changed."""
        conn = self.conn(durable)
        with self._write_lock:
            try:
                return conn.execute(sql, params).rowcount
            except sqlite3.OperationalError as exc:  # locked, I/O: nothing was written
                raise BrokerError(f"SQLite {self.path}: cannot write: {exc}") from exc

    def read(self) -> sqlite3.Connection:
        return self.conn(False)

    def migrate(self) -> None:
        with self.write(durable=True) as conn:
            current = self._version(conn)
            if current > SCHEMA_VERSION:
                raise SchemaError(
                    f"{self.path} has faena schema version {current}, but this faena knows "
                    f"versions up to {SCHEMA_VERSION}; upgrade faena (pip install -U faena) "
                    f"on this machine, or use another database file"
                )
            for version, sql in migrations():
                if version <= current:
                    continue
                for statement in _statements(sql):
                    conn.execute(statement)
                conn.execute(
                    "INSERT INTO faena_meta(key, value) VALUES ('schema_version', ?) "
                    "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                    (str(version),),
                )
                conn.execute(
                    "INSERT OR IGNORE INTO faena_meta(key, value) VALUES ('app', ?)",
                    (APP_MARKER,),
                )

    def _version(self, conn: sqlite3.Connection) -> int:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if "faena_meta" not in tables:
            foreign = sorted(t for t in tables if not t.startswith("sqlite_"))
            if foreign:
                raise SchemaError(
                    f"{self.path} is an SQLite database but not faena's (it has tables "
                    f"{', '.join(foreign[:5])}); faena will not write into it. Point the broker "
                    f"URL at a new file such as sqlite:///faena.db"
                )
            return 0
        meta = dict(conn.execute("SELECT key, value FROM faena_meta").fetchall())
        if meta.get("app") != APP_MARKER:
            raise SchemaError(f"{self.path} has a faena_meta table that faena did not write")
        return int(meta.get("schema_version", "0"))

    def close(self) -> None:
        with self._all_lock:
            conns, self._all = self._all, []
        for conn in conns:
            with suppress(sqlite3.Error):
                conn.close()
        self._local = threading.local()


def _statements(sql: str) -> list[str]:
    """The statements of a migration (a trigger's body holds semicolons of its own)."""
    out, part = [], ""
    for line in sql.splitlines():
        if line.strip().startswith("--"):
            continue
        part += line + "\n"
        if sqlite3.complete_statement(part):
            out.append(part.strip().rstrip(";").strip())
            part = ""
    if part.strip():
        out.append(part.strip())
    return [s for s in out if s]
