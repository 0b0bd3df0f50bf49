"""Operators' listings and counts read indexes, never the whole jobs table: the plans of the
statements the brokers really send (traced), not timings."""

from __future__ import annotations

import itertools
import re
import sqlite3
import uuid
from pathlib import Path
from typing import Any

import psycopg
import pytest
from tests.conftest import PG_URL, need, port_open

from faena.brokers.protocol import Broker, JobSearch
from faena.brokers.sqlite import SQLiteBroker
from faena.core.job import NewJob
from faena.core.search import encode_cursor
from faena.core.states import JobState

QUEUES = ["qa", "qb", "qc"]


def _operator_calls(broker: Broker) -> None:
    for state, queue, task in itertools.product([None, *JobState], [None, "qb"], [None, "ta"]):
        broker.list_jobs(state=state, queue=queue, task=task, limit=50, offset=10)
    for state, queue, task in itertools.product([None, *JobState], [None, "qb"], [None, "ta"]):
        for text in (None, "needle"):
            search = JobSearch(state=state, queue=queue, task=task, text=text, since=1.0)
            page = broker.search_jobs(search, limit=2)
            broker.search_jobs(search, limit=2, cursor=page.next_cursor or encode_cursor(20))
    for queue in (None, "qb"):
        broker.job_stats(minutes=60, queue=queue)
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
    unfiltered = covered = counters = 0
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
        if "INDEXED BY faena_jobs_due" in sql:  # the queue stats: counters, and per queue
            covered += 1  # a range of the later waiting jobs and the first (migration 12)
            assert [p for p in plan if p.startswith("SEARCH faena_jobs")] == [
                "SEARCH faena_jobs USING COVERING INDEX faena_jobs_due (queue=? AND run_at>?)",
                "SEARCH faena_jobs USING COVERING INDEX faena_jobs_due (queue=? AND run_at>?)",
                "SEARCH faena_jobs USING COVERING INDEX faena_jobs_due (queue=?)",
            ], plan
            assert "SCAN faena_job_counts" in plan, plan
        if "faena_job_minutes" in sql:  # job_stats' counters: a range of the window's minutes
            counters += 1
            assert not [p for p in plan if p.startswith("SCAN")], (sql, plan)
            assert any(
                p.startswith("SEARCH faena_job_minutes USING PRIMARY KEY (minute>? AND minute<?)")
                for p in plan
            ), (sql, plan)
    assert unfiltered == 1
    assert covered == 1
    assert counters == 2  # all queues, and one
    broker.close()


def test_sqlite_enqueue_claim_and_finish_seek_their_rows(tmp_path: Path) -> None:
    """The statements of a job's life (its enqueue alone and in bulk, a claim, a finish of
    each kind, a heartbeat, a release) find their rows by key or through the claim index:
    none scans faena_jobs or sorts. Each job's own work then costs the same however many jobs
    the store holds."""
    from faena.core.job import ErrorInfo, Lease, Outcome

    broker = SQLiteBroker(str(tmp_path / "drain.db"))
    broker.setup()
    sent: list[str] = []
    for durable in (True, False):  # the producer's and the worker's connection
        broker._store.conn(durable).set_trace_callback(sent.append)
    broker.enqueue([NewJob(task="t", queue="qa")])  # one job: the one-statement path
    broker.enqueue([NewJob(task="t", queue="qa") for _ in range(9)])
    jobs = broker.claim("w", ["qa", "qb"], 4, 60.0).jobs
    error = ErrorInfo("E", "m", "tb")
    outcomes = [
        Outcome(jobs[0].id, jobs[0].attempt, JobState.SUCCEEDED, "1"),
        Outcome(jobs[1].id, jobs[1].attempt, JobState.FAILED, error=error, retry_at=0.0),
        Outcome(jobs[2].id, jobs[2].attempt, JobState.DEAD, error=error),
    ]
    _, more = broker.finish_and_claim(outcomes, "w", ["qa"], 2, 60.0)
    broker.heartbeat("w", [Lease(j.id, j.attempt) for j in more.jobs], 60.0)
    broker.release([Lease(jobs[3].id, jobs[3].attempt)])
    for durable in (True, False):
        broker._store.conn(durable).set_trace_callback(None)
    # a trigger's statements are traced with the text of the statement that fired it
    statements = [s for s in dict.fromkeys(sent) if not s.startswith(("BEGIN", "COMMIT"))]
    conn = broker._store.read()
    kinds = set()
    merged = 0
    for sql in statements:
        rows = conn.execute(f"EXPLAIN QUERY PLAN {sql}").fetchall()
        plan = [row[3] for row in rows]
        assert not [p for p in plan if p.startswith("SCAN faena_jobs")], (sql, plan)
        # (the capacity read groups the running jobs by pool: as many rows as leases held)
        parent = {row[0]: row[1] for row in rows}
        detail = {row[0]: row[3] for row in rows}
        for row in rows:
            if "TEMP B-TREE FOR ORDER BY" in row[3]:
                # only the merge of several queues' candidates sorts: each queue's rows,
                # at most its LIMIT, not its backlog
                assert detail.get(parent[row[0]]) in ("LEFT", "RIGHT"), (sql, plan)
                merged += 1
        kinds.add(sql.split()[0])
    assert merged == 2  # the claim from two queues
    assert {"INSERT", "UPDATE", "WITH", "SELECT"} <= kinds
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


def test_postgres_listings_and_counts_use_indexes(monkeypatch: pytest.MonkeyPatch) -> None:
    need(port_open("127.0.0.1", 5432), "PostgreSQL is not running on 127.0.0.1:5432")
    from faena.brokers.postgres import PostgresBroker

    schema = f"plans_{uuid.uuid4().hex[:12]}"
    broker = PostgresBroker.from_url(f"{PG_URL}{'&' if '?' in PG_URL else '?'}schema={schema}")
    broker.setup()
    try:
        broker.enqueue(
            [NewJob(task=f"t{i % 2}", queue=QUEUES[i % 3]) for i in range(30)]  # type: ignore[arg-type]
        )
        broker.claim("w", ["qa"], 3, 30.0)
        sent: list[tuple[str, Any]] = []
        real = psycopg.Connection.execute

        def spy(self: Any, query: Any, params: Any = None, **kw: Any) -> Any:
            sent.append((str(query), params))
            return real(self, query, params, **kw)

        monkeypatch.setattr(psycopg.Connection, "execute", spy)
        _operator_calls(broker)
        monkeypatch.undo()
        statements = [
            (q, p)
            for q, p in sent
            if ("jobs" in q or "job_minutes" in q) and q.lstrip().startswith(("SELECT", "WITH"))
        ]
        assert len(statements) > 30
        counters = [(q, p) for q, p in statements if "job_minutes" in q]
        assert len(counters) == 2  # job_stats' counters, of all queues and of one
        with psycopg.connect(PG_URL, autocommit=True) as conn:
            # the planner may not pick a scan of every row, nor a sort, where an index serves
            for setting in ("enable_seqscan", "enable_sort", "enable_bitmapscan"):
                conn.execute(f"SET {setting} = off")
            for sql, params in statements:
                plan = "\n".join(r[0] for r in conn.execute(f"EXPLAIN {sql}", params))
                assert "Seq Scan on jobs" not in plan, (sql, plan)
                assert "Seq Scan on job_minutes" not in plan, (sql, plan)
                if "job_minutes" in sql:  # a range of the primary key (minute, ...)
                    assert "Index" in plan and "job_minutes_pkey" in plan, (sql, plan)
                    assert "Index Cond: ((minute >=" in plan, (sql, plan)
                if "ORDER BY" in sql and "seq DESC" in sql:
                    assert not re.search(r"(^|->)\s*Sort\s+\(", plan, re.M), (sql, plan)
    finally:
        broker.destroy()
        broker.close()
