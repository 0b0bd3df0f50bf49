"""The counters behind ``count_by_state`` and ``queue_stats`` (PostgreSQL migration 15,
SQLite migration 12): an upgrade counts the jobs a store holds once; on PostgreSQL two
backends changing jobs at once never wait on a counter row, and the fold of the shards of
backends that are gone waits on nothing and loses nothing."""

from __future__ import annotations

import sqlite3
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from tests.conftest import PG_URL, need, port_open

from faena.brokers.postgres import PostgresBroker, rows
from faena.brokers.postgres.config import LOCK_CLASS_FOLD, PgConfig
from faena.brokers.postgres.schema import migrate
from faena.brokers.sqlite import SQLiteBroker
from faena.core import lifecycle
from faena.core.clock import ManualClock
from faena.core.job import NewJob, Outcome
from faena.core.states import JobState

T0 = 1_800_000_000.0
LEASE = 30.0
ENQUEUE = "SELECT e.ord, e.holder FROM {s}.enqueue(%s::json, %s::double precision) AS e"


@pytest.fixture
def config() -> Iterator[PgConfig]:
    need(port_open("127.0.0.1", 5432), "PostgreSQL is not running on 127.0.0.1:5432")
    cfg = PgConfig.parse(f"{PG_URL}{'&' if '?' in PG_URL else '?'}schema=t_{uuid.uuid4().hex[:12]}")
    yield cfg
    with psycopg.connect(cfg.conninfo, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {cfg.quoted_schema} CASCADE")


def _sql(conn: psycopg.Connection[Any], cfg: PgConfig, sql: str, *params: Any) -> list[Any]:
    cur = conn.execute(sql.format(s=cfg.quoted_schema), params)
    return cur.fetchall() if cur.description else []


def _pg_direct(conn: psycopg.Connection[Any], cfg: PgConfig) -> dict[tuple[str, JobState], int]:
    found = _sql(conn, cfg, "SELECT queue, state, count(*) FROM {s}.jobs GROUP BY 1, 2")
    return {(q, JobState(s)): int(n) for q, s, n in found}


def _enqueue_v14(conn: psycopg.Connection[Any], cfg: PgConfig, new: list[NewJob]) -> list[str]:
    made = [lifecycle.create(n, T0) for n in new]
    _sql(conn, cfg, ENQUEUE, rows.new_jobs_json(new, made), T0)
    return [m.id for m in made]


@pytest.mark.postgres
def test_a_version_14_store_gets_its_jobs_counted_once(config: PgConfig) -> None:
    new = [NewJob("t", ("a", "b")[i % 2], run_at=T0 + 100 * (i % 3)) for i in range(12)]
    with psycopg.connect(config.conninfo, autocommit=True) as conn:
        migrate(conn, config, upto=14)
        ids = _enqueue_v14(conn, config, new)
        _sql(conn, config, "UPDATE {s}.jobs SET state = 'running' WHERE id = %s", ids[0])
        _sql(conn, config, "UPDATE {s}.jobs SET state = 'dead', finished_at = %s WHERE id = %s",
             T0, ids[3])  # fmt: skip
        assert _sql(conn, config, "SELECT to_regclass('{s}.job_counts')") == [(None,)]
    clock = ManualClock(T0 + 50)
    broker = PostgresBroker(config, clock=clock)
    try:
        broker.setup()
        with psycopg.connect(config.conninfo, autocommit=True) as conn:
            want = _pg_direct(conn, config)
            assert _sql(conn, config, "SELECT DISTINCT shard FROM {s}.job_counts") == [(0,)]
        assert broker.count_by_state() == want
        stats = {s.queue: (s.waiting, s.scheduled, s.running) for s in broker.queue_stats()}
        # a: ids 0, 2, 4, 6, 8, 10 (0 running; run_at T0, T0+200, T0+100, T0, T0+200, T0+100)
        # b: ids 1, 3, ... (3 dead; run_at T0+100, T0, T0+200, T0+100, T0, T0+200)
        assert stats == {"a": (1, 4, 1), "b": (1, 4, 0)}
        # and a change after the upgrade is counted
        broker.enqueue([NewJob("t", "a")])
        with psycopg.connect(config.conninfo, autocommit=True) as conn:
            assert broker.count_by_state() == _pg_direct(conn, config)
    finally:
        broker.destroy()
        broker.close()


@pytest.mark.postgres
def test_two_backends_changing_jobs_at_once_never_wait_on_a_counter(config: PgConfig) -> None:
    """Each writes its own shard: with both transactions open on the same (queue, state),
    neither waits (a lock wait would end the second by lock_timeout)."""
    broker = PostgresBroker(config, clock=ManualClock(T0))
    try:
        broker.setup()
        a, b, c = broker.enqueue([NewJob("t", "q") for _ in range(3)])
        one = psycopg.connect(config.conninfo)
        two = psycopg.connect(config.conninfo)
        try:
            for conn in (one, two):
                conn.execute("SET lock_timeout = '2s'")
            _sql(one, config, "UPDATE {s}.jobs SET state = 'running' WHERE id = %s", a.id)
            _sql(two, config, "UPDATE {s}.jobs SET state = 'running' WHERE id = %s", b.id)
            _sql(two, config, "DELETE FROM {s}.jobs WHERE id = %s", c.id)
            _sql(one, config, "UPDATE {s}.jobs SET state = 'succeeded' WHERE id = %s", a.id)
            one.commit()
            two.commit()
        finally:
            one.close()
            two.close()
        assert broker.count_by_state() == {("q", JobState.RUNNING): 1, ("q", JobState.SUCCEEDED): 1}
        with psycopg.connect(config.conninfo, autocommit=True) as conn:
            _sql(conn, config, "TRUNCATE {s}.jobs CASCADE")
        assert broker.count_by_state() == {}
        assert broker.queue_stats() == []
    finally:
        broker.destroy()
        broker.close()


def _gone(conn: psycopg.Connection[Any], pid: int) -> None:
    for _ in range(100):  # a closed connection's backend exits soon after
        if not conn.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s", (pid,)).fetchall():
            return
        time.sleep(0.05)
    raise AssertionError(f"backend {pid} still there")


@pytest.mark.postgres
def test_the_fold_adds_up_gone_shards_and_waits_on_nothing(config: PgConfig) -> None:
    clock = ManualClock(T0)
    broker = PostgresBroker(config, clock=clock)
    broker.setup()
    try:
        with psycopg.connect(config.conninfo, autocommit=True) as conn:
            pids = []
            for queue in ("x", "y"):
                with psycopg.connect(config.conninfo, autocommit=True) as writer:
                    pids.append(writer.execute("SELECT pg_backend_pid()").fetchone()[0])  # type: ignore[index]
                    _enqueue_v14(writer, config, [NewJob("t", queue) for _ in range(3)])
            for pid in pids:
                _gone(conn, pid)
            want = broker.count_by_state()
            assert want == {("x", JobState.QUEUED): 3, ("y", JobState.QUEUED): 3}
            # a row some transaction holds (a new backend with a gone one's pid) is skipped,
            # not waited for; a fold that does not get the fold lock does nothing
            held = psycopg.connect(config.conninfo)
            try:
                held.execute("SET lock_timeout = '2s'")
                _sql(held, config, "SELECT 1 FROM {s}.job_counts WHERE queue = 'x' FOR UPDATE")
                conn.execute("SET lock_timeout = '2s'")
                assert _sql(conn, config, "SELECT {s}.fold_counts()") == [(1,)]
                other = psycopg.connect(config.conninfo)
                try:
                    other.execute(
                        "SELECT pg_advisory_xact_lock(%s, %s)", (LOCK_CLASS_FOLD, config.lock_key)
                    )
                    assert _sql(conn, config, "SELECT {s}.fold_counts()") == [(0,)]
                finally:
                    other.close()
            finally:
                held.close()
            assert broker.count_by_state() == want
            shards = "SELECT queue, shard <> 0 FROM {s}.job_counts ORDER BY 1"
            assert _sql(conn, config, shards) == [("x", True), ("y", False)]
            clock.advance(1)
            broker.prune(T0 - 3600)  # prune folds too
            assert _sql(conn, config, shards) == [("x", False), ("y", False)]
            assert broker.count_by_state() == want
    finally:
        broker.destroy()
        broker.close()


def test_a_version_11_sqlite_store_gets_its_jobs_counted_once(tmp_path: Path) -> None:
    path = tmp_path / "v11.db"
    clock = ManualClock(T0)
    broker = SQLiteBroker(str(path), clock=clock)
    broker.setup()
    broker.enqueue([NewJob("t", ("a", "b")[i % 2]) for i in range(6)])
    broker.enqueue([NewJob("t", "a", run_at=T0 + 100)])
    got = broker.claim("w", ["a", "b"], 3, LEASE).jobs
    broker.finish([Outcome(got[0].id, got[0].attempt, JobState.SUCCEEDED)])
    broker.close()
    conn = sqlite3.connect(path)  # back to version 11: no counters, no triggers, no index
    for trigger in ("faena_count_inserted", "faena_count_moved", "faena_count_deleted"):
        conn.execute(f"DROP TRIGGER {trigger}")
    conn.execute("DROP TABLE faena_job_counts")
    conn.execute("DROP INDEX faena_jobs_due")
    conn.execute("ALTER TABLE faena_runs DROP COLUMN ended_noted")  # nor version 14's
    conn.execute("UPDATE faena_meta SET value = '11' WHERE key = 'schema_version'")
    conn.commit()
    found = conn.execute("SELECT queue, state, count(*) FROM faena_jobs GROUP BY 1, 2").fetchall()
    split = conn.execute(
        "SELECT queue, sum(state IN ('scheduled', 'queued', 'failed') AND run_at <= ?),"
        " sum(state IN ('scheduled', 'queued', 'failed') AND run_at > ?),"
        " sum(state = 'running') FROM faena_jobs GROUP BY queue",
        (T0, T0),
    ).fetchall()
    conn.close()
    want = {(q, JobState(s)): n for q, s, n in found}

    broker = SQLiteBroker(str(path), clock=clock)
    broker.setup()
    try:
        assert broker.count_by_state() == want
        stats = {s.queue: (s.waiting, s.scheduled, s.running) for s in broker.queue_stats()}
        assert stats == {q: (w, later, r) for q, w, later, r in split}
        assert stats["a"][1] == 1  # the one enqueued for later
        broker.finish([Outcome(got[1].id, got[1].attempt, JobState.SUCCEEDED)])
        after = broker.count_by_state()
        assert (
            after[(got[1].queue, JobState.SUCCEEDED)]
            == want.get((got[1].queue, JobState.SUCCEEDED), 0) + 1
        )
        assert sum(after.values()) == 7
    finally:
        broker.close()
