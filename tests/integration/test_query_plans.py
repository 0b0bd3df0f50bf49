"""Operators' listings and counts read indexes, never the whole jobs table: the plans of the
statements the brokers really send (traced), not timings."""

from __future__ import annotations

import itertools
import sqlite3
from pathlib import Path

from faena.brokers.sqlite import SQLiteBroker
from faena.core.job import NewJob
from faena.core.states import JobState

QUEUES = ["qa", "qb", "qc"]


def _operator_calls(broker: SQLiteBroker) -> None:
    for state, queue, task in itertools.product([None, *JobState], [None, "qb"], [None, "ta"]):
        broker.list_jobs(state=state, queue=queue, task=task, limit=50, offset=10)
    broker.count_by_state()
    broker.queue_stats()
    broker.pool_stats()


def test_sqlite_listings_and_counts_use_indexes(tmp_path: Path) -> None:
    broker = SQLiteBroker(str(tmp_path / "plans.db"))
    broker.setup()
    broker.enqueue(
        [NewJob(task=f"t{i % 2}", queue=QUEUES[i % 3]) for i in range(30)]  # type: ignore[arg-type]
    )
    conn = broker._store.read()  # the connection the operator calls of this thread use
    sent: list[str] = []
    conn.set_trace_callback(sent.append)
    _operator_calls(broker)
    conn.set_trace_callback(None)
    selects = [s for s in dict.fromkeys(sent) if s.lstrip().upper().startswith(("SELECT", "WITH"))]
    assert len(selects) > 30
    unfiltered = 0
    for sql in selects:
        plan = [row[3] for row in conn.execute(f"EXPLAIN QUERY PLAN {sql}")]
        scans = [p for p in plan if p.startswith("SCAN faena_jobs") and "INDEX" not in p]
        sorts = [p for p in plan if "TEMP B-TREE FOR ORDER BY" in p]
        if " WHERE " not in sql and "ORDER BY seq DESC LIMIT" in sql:
            unfiltered += 1  # newest first without a filter: the table in rowid order, LIMIT
            assert plan == ["SCAN faena_jobs"], sql
            continue
        assert not scans, (sql, plan)
        assert not sorts, (sql, plan)
    assert unfiltered == 1
    broker.close()


def test_the_listing_indexes_come_with_an_upgrade(tmp_path: Path) -> None:
    """A version 1 database (before the listing indexes) gets them from setup()."""
    path = tmp_path / "v1.db"
    from faena.brokers.sqlite import store

    v1 = next(sql for version, sql in store.migrations() if version == 1)
    conn = sqlite3.connect(path)
    for statement in store._statements(v1):
        conn.execute(statement)
    conn.execute("INSERT INTO faena_meta VALUES ('schema_version', '1'), ('app', 'faena')")
    conn.commit()
    conn.close()
    broker = SQLiteBroker(str(path))
    broker.setup()
    names = {
        r[0]
        for r in broker._store.read().execute("SELECT name FROM sqlite_master WHERE type='index'")
    }
    assert {"faena_jobs_state", "faena_jobs_task"} <= names
    broker.close()
