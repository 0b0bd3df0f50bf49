"""The SQLite store's files (not a database, another program's, a newer faena's, locked,
opened by many processes at once) and the API on a real SQLite file: moved out of the unit
tests, which do no I/O."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest
from tests.conftest import sockets_open

import faena
from faena.brokers.sqlite import SQLiteBroker
from faena.brokers.url import open_broker
from faena.errors import BrokerError, ConfigError, PayloadError, SchemaError, UnknownPoolError


def test_a_file_that_is_not_a_database(tmp_path: Path) -> None:
    path = tmp_path / "notes.db"
    path.write_text("not sqlite at all " * 100)
    with pytest.raises(SchemaError, match="not an SQLite database"):
        open_broker(f"sqlite:///{path}").setup()
    assert path.read_text().startswith("not sqlite"), "the file was not touched"


def _open_at(path: str, start: float) -> str:
    """In a pool process: open ``path`` as a worker does, at ``start`` (wall clock)."""
    from faena.brokers.sqlite.store import Store

    time.sleep(max(start - time.time(), 0))
    try:
        Store(path).conn(durable=True)
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    return "ok"


def test_processes_that_open_a_new_database_at_once_all_get_in(tmp_path: Path) -> None:
    """The workers of --processes open a new database together; switching it to WAL mode
    needs the file alone, and SQLite's busy handler does not wait for that."""
    import multiprocessing

    answers = []
    with multiprocessing.get_context("fork").Pool(6) as pool:
        for i in range(30):
            path, start = str(tmp_path / f"new-{i}.db"), time.time() + 0.05
            answers += pool.starmap(_open_at, [(path, start)] * 6)
    assert [a for a in answers if a != "ok"] == []


def test_a_locked_database_is_not_called_a_bad_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from faena.brokers.sqlite import store

    monkeypatch.setattr(store, "BUSY_TIMEOUT_MS", 200)
    path = tmp_path / "busy.db"
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("PRAGMA journal_mode=DELETE")
    holder.execute("BEGIN EXCLUSIVE")  # another program holds the file
    try:
        with pytest.raises(BrokerError, match="database is locked") as caught:
            store.Store(str(path)).conn(durable=True)
        assert not isinstance(caught.value, SchemaError)
    finally:
        holder.execute("ROLLBACK")
        holder.close()


def test_one_job_enqueued_while_another_program_holds_the_write_lock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One job goes in as one statement without BEGIN (producing.insert_one): a lock held
    past the busy timeout is a BrokerError naming the file, as for every other write, and
    the job is not written."""
    from faena.brokers.sqlite import store
    from faena.core.job import NewJob

    monkeypatch.setattr(store, "BUSY_TIMEOUT_MS", 200)
    path = tmp_path / "held.db"
    broker = SQLiteBroker(str(path))
    broker.setup()
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another program writes, and goes on writing
    try:
        with pytest.raises(BrokerError, match=r"held\.db: cannot write: database is locked"):
            broker.enqueue([NewJob(task="t", queue="q")])
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert broker.list_jobs() == []
    [job] = broker.enqueue([NewJob(task="t", queue="q")])  # the lock gone, it goes in
    assert broker.get(job.id) is not None
    broker.close()


def test_a_database_that_is_not_faenas(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE customers (id INTEGER)")
    with pytest.raises(SchemaError, match=r"not faena's.*customers"):
        open_broker(f"sqlite:///{path}").setup()


def test_a_database_from_a_newer_faena(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'f.db'}"
    broker = open_broker(url)
    broker.setup()
    broker.close()
    with sqlite3.connect(tmp_path / "f.db") as conn:
        conn.execute("UPDATE faena_meta SET value = '99' WHERE key = 'schema_version'")
    with pytest.raises(SchemaError, match=r"schema version 99.*upgrade faena"):
        open_broker(url).setup()


def test_app_refuses_bad_input_and_keeps_other_jobs(tmp_path: Path) -> None:
    app = faena.App(broker=f"sqlite:///{tmp_path / 'a.db'}", pools={"etl_pool": 2})

    @app.task(queue="etl", pool="etl_pool")
    def load(table: str) -> None: ...

    good = load.enqueue("users")
    with pytest.raises(PayloadError):
        load.enqueue(object())
    with pytest.raises(UnknownPoolError, match="gpu_pool"):
        app.enqueue("x", pool="gpu_pool")
    with pytest.raises(ConfigError, match="queue name"):
        app.enqueue("x", queue="no spaces allowed")
    with pytest.raises(ConfigError, match="unknown task option"):
        app.task(queus="typo")(lambda: None)
    assert [h.id for h in app.jobs()] == [good.id]
    app.close()


def test_idempotent_enqueue_through_the_api(tmp_path: Path) -> None:
    app = faena.App(broker=f"sqlite:///{tmp_path / 'a.db'}")

    @app.task
    def load_table(table: str, day: str) -> None: ...

    a = load_table.enqueue_with(["users", "2026-11-27"], idempotency_key="users/2026-11-27")
    b = load_table.enqueue_with(["users", "2026-11-27"], idempotency_key="users/2026-11-27")
    assert a.id == b.id
    assert load_table("x", "y") is None  # calling the task runs it here
    app.close()


def test_a_producer_holds_no_wake_up_socket_until_a_worker_waits(tmp_path: Path) -> None:
    """The SQLite broker's wake-up sender makes its socket on the first wake-up a waiting
    worker is there for, and close() closes it: a producer alone holds none."""
    before = sockets_open()
    app = faena.App(broker=f"sqlite:///{tmp_path / 'p.db'}")
    app.enqueue("t")  # nobody waits: nobody to wake
    assert sockets_open() == before
    waker = app.broker.waker(["default"])  # a worker waits (it binds a socket)
    try:
        app.enqueue("t")
        assert sockets_open() == before + 2  # the waker's, and the sender's to wake it
    finally:
        waker.close()
        app.close()
    assert sockets_open() == before


def test_a_version_10_store_gets_its_finished_jobs_counted_once(tmp_path: Path) -> None:
    """Migration 11 counts the jobs a version 10 store holds once (by state and
    finished_at, retried attempts unknown); from then on the trigger counts each ending."""
    from faena.core.clock import ManualClock
    from faena.core.job import NewJob, Outcome
    from faena.core.states import JobState

    path = tmp_path / "v10.db"
    clock = ManualClock()
    t0 = clock.now()
    broker = SQLiteBroker(str(path), clock=clock)
    broker.setup()
    broker.enqueue([NewJob(task="t", queue="q") for _ in range(3)])
    got = broker.claim("w", ["q"], 3, 60.0).jobs
    clock.set(t0 + 61)
    broker.finish([Outcome(got[0].id, got[0].attempt, JobState.SUCCEEDED)])
    broker.finish([Outcome(got[1].id, got[1].attempt, JobState.DEAD)])
    broker.close()
    conn = sqlite3.connect(path)  # back to version 10: no counters, no trigger
    conn.execute("DROP TRIGGER faena_count_ends")
    conn.execute("DROP TABLE faena_job_minutes")
    for trigger in ("faena_count_inserted", "faena_count_moved", "faena_count_deleted"):
        conn.execute(f"DROP TRIGGER {trigger}")  # and none of version 12's
    conn.execute("DROP TABLE faena_job_counts")
    conn.execute("DROP INDEX faena_jobs_due")
    conn.execute("ALTER TABLE faena_runs DROP COLUMN ended_noted")  # nor version 14's
    conn.execute("UPDATE faena_meta SET value = '10' WHERE key = 'schema_version'")
    conn.commit()
    conn.close()

    clock.set(t0 + 130)
    broker = SQLiteBroker(str(path), clock=clock)
    broker.setup()
    table = [(m.succeeded, m.retried, m.dead) for m in broker.job_stats(minutes=3).minutes]
    assert table == [(0, 0, 0), (1, 0, 1), (0, 0, 0)]
    broker.finish([Outcome(got[2].id, got[2].attempt, JobState.SUCCEEDED)])
    assert broker.job_stats(minutes=1).minutes[0].succeeded == 1
    broker.close()
