"""Upgrading a PostgreSQL schema written by an older faena: the jobs in it carry on where they
were, and the older version's functions keep answering, so its workers still running during a
rolling upgrade go on working."""

from __future__ import annotations

import json
import select
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from tests.conftest import PG_URL, need, port_open

from faena.brokers.postgres import PostgresBroker, rows
from faena.brokers.postgres.config import PgConfig
from faena.brokers.postgres.schema import SCHEMA_VERSION, migrate
from faena.core import lifecycle
from faena.core.clock import ManualClock
from faena.core.job import ErrorInfo, Lease, NewJob, Outcome
from faena.core.states import JobState

pytestmark = pytest.mark.postgres

T0 = 1_800_000_000.0
LEASE = 30.0

# The statements a version 1 broker sends (faena before schema version 2).
V1_ENQUEUE = "SELECT e.ord, e.holder FROM {s}.enqueue(%s::json, %s::double precision) AS e"
V1_CLAIM = (
    "SELECT e.kind, e.ord, (e.job).* FROM {s}.claim(%s, %s::text[], %s::integer,"
    " %s::double precision, %s::double precision) AS e"
)
V1_FINISH = (
    "SELECT f.ord FROM {s}.finish(%s::text[], %s::integer[], %s::text[], %s::text[],"
    " %s::text[], %s::text[], %s::text[], %s::double precision[], %s::integer[],"
    " %s::double precision) AS f(ord)"
)
V1_FINISH_AND_CLAIM = (
    "SELECT e.kind, e.ord, (e.job).* FROM {s}.finish_and_claim(%s::text[], %s::integer[],"
    " %s::text[], %s::text[], %s::text[], %s::text[], %s::text[], %s::double precision[],"
    " %s::integer[], %s, %s::text[], %s::integer, %s::double precision,"
    " %s::double precision) AS e"
)


def _v1_outcomes(outcomes: list[Outcome]) -> list[Any]:
    """A version 1 broker's array arguments of finish for ``outcomes``."""
    return [
        [o.job_id for o in outcomes],
        [o.attempt for o in outcomes],
        [o.state.value for o in outcomes],
        [o.result_json for o in outcomes],
        [None if o.error is None else o.error.type for o in outcomes],
        [None if o.error is None else o.error.message for o in outcomes],
        [None if o.error is None else o.error.traceback for o in outcomes],
        [o.retry_at for o in outcomes],
        [o.max_attempts for o in outcomes],
    ]


@pytest.fixture
def config() -> Iterator[PgConfig]:
    """A schema at version 1, as an older faena left it."""
    need(port_open("127.0.0.1", 5432), "PostgreSQL is not running on 127.0.0.1:5432")
    cfg = PgConfig.parse(f"{PG_URL}{'&' if '?' in PG_URL else '?'}schema=t_{uuid.uuid4().hex[:12]}")
    with psycopg.connect(cfg.conninfo, autocommit=True) as conn:
        assert migrate(conn, cfg, upto=1) == 0
    yield cfg
    with psycopg.connect(cfg.conninfo, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {cfg.quoted_schema} CASCADE")


def _v1(conn: psycopg.Connection[Any], cfg: PgConfig, sql: str, *params: Any) -> list[Any]:
    return conn.execute(sql.format(s=cfg.quoted_schema), params).fetchall()


def test_a_version_1_schema_with_jobs_in_it_upgrades(config: PgConfig) -> None:
    new = [NewJob("t", "etl", max_attempts=3) for _ in range(4)]
    with psycopg.connect(config.conninfo, autocommit=True) as conn:
        made = [lifecycle.create(n, T0) for n in new]
        assert _v1(conn, config, V1_ENQUEUE, rows.new_jobs_json(new, made), T0) == []
        # an old worker holds two jobs; one of its attempts fails and waits to be retried
        claimed = _v1(conn, config, V1_CLAIM, "old", ["etl"], 2, LEASE, T0)
        held = [rows.to_job(r, 2) for r in claimed]
        failed = Outcome(
            held[1].id,
            held[1].attempt,
            JobState.FAILED,
            error=ErrorInfo("E", "m"),
            retry_at=T0 + 5,
        )
        assert _v1(conn, config, V1_FINISH, *_v1_outcomes([failed]), T0) == [(1,)]

    clock = ManualClock(T0 + 1)
    broker = PostgresBroker(config, clock=clock)
    try:
        broker.setup()
        with psycopg.connect(config.conninfo) as conn:
            row = conn.execute(
                f"SELECT max(version) FROM {config.quoted_schema}.faena_schema_version"
            ).fetchone()
        assert row == (SCHEMA_VERSION,) and SCHEMA_VERSION >= 2

        # the old attempt still running is fenced on (id, attempt) as before
        running = held[0]
        stale = Outcome(running.id, running.attempt + 1, JobState.SUCCEEDED, result_json="0")
        done = Outcome(running.id, running.attempt, JobState.SUCCEEDED, result_json="1")
        assert broker.finish([stale]) == [False]
        assert broker.finish([done]) == [True]
        stored = broker.get(running.id)
        assert stored is not None and stored.state is JobState.SUCCEEDED
        assert stored.result_json == "1"

        # the two queued jobs come first, in enqueue order; the failed one once it is due
        first = broker.claim("new", ["etl"], 4, LEASE).jobs
        assert [j.id for j in first] == [new[2].id, new[3].id]
        assert all(j.attempt == 1 and j.worker == "new" for j in first)
        clock.advance(5)
        [retried] = broker.claim("new", ["etl"], 4, LEASE).jobs
        assert retried.id == held[1].id and retried.attempt == 2 and retried.tries == 2
        assert retried.error is not None and retried.error.type == "E"

        # and a lease the old worker let run out is reaped as before
        clock.advance(LEASE + 1)
        reaped = broker.reap()
        assert {r.job.id for r in reaped} == {new[2].id, new[3].id, held[1].id}
    finally:
        broker.destroy()
        broker.close()


def test_version_1_functions_answer_after_the_upgrade(config: PgConfig) -> None:
    """A version 1 worker still running sends its old statements to the upgraded schema."""
    broker = PostgresBroker(config, clock=ManualClock(T0))
    broker.setup()
    waker = broker.waker(["etl"])
    try:
        assert waker.wait_listening(5.0)
        jobs = broker.enqueue([NewJob("t", "etl") for _ in range(3)])
        assert select.select([waker], [], [], 5.0)[0] == [waker]  # the enqueue's wake-up
        waker.drain()
        with psycopg.connect(config.conninfo, autocommit=True) as conn:
            claimed = _v1(conn, config, V1_CLAIM, "old", ["etl"], 1, LEASE, T0)
            assert [(r[0], r[1]) for r in claimed] == [("c", 1)]
            [first] = [rows.to_job(r, 2) for r in claimed]
            assert first.id == jobs[0].id and first.state is JobState.RUNNING

            outcome = Outcome(first.id, first.attempt, JobState.SUCCEEDED, result_json="7")
            stale = Outcome(first.id, first.attempt + 1, JobState.SUCCEEDED, result_json="8")
            found = _v1(
                conn,
                config,
                V1_FINISH_AND_CLAIM,
                *_v1_outcomes([stale, outcome]),
                "old",
                ["etl"],
                2,
                LEASE,
                T0,
            )
            finished, result = rows.to_claim_result(found)
            assert finished == [2]
            assert [j.id for j in result.jobs] == [jobs[1].id, jobs[2].id]

            second = result.jobs[0]
            failed = Outcome(
                second.id,
                second.attempt,
                JobState.FAILED,
                error=ErrorInfo("E", "m"),
                retry_at=T0,
            )
            assert _v1(conn, config, V1_FINISH, *_v1_outcomes([failed]), T0) == [(1,)]
            # nothing claimed, nothing finished: no rows, as in version 1
            assert (
                _v1(
                    conn, config, V1_FINISH_AND_CLAIM, *_v1_outcomes([]), "old", ["x"], 1, LEASE, T0
                )
                == []
            )
        # a failed attempt due at once wakes the listeners, as in version 1
        assert select.select([waker], [], [], 5.0)[0] == [waker]
        stored = broker.get(first.id)
        assert stored is not None and stored.result_json == "7"
        again = broker.get(second.id)
        assert again is not None and again.state is JobState.FAILED
        assert broker.release([Lease(result.jobs[1].id, result.jobs[1].attempt)]) == [True]
    finally:
        waker.close()
        broker.destroy()
        broker.close()


# The statement a version 2 broker sends (faena before schema version 3).
V2_EXCHANGE = (
    "SELECT e.kind, e.ord, (e.job).* FROM {s}.exchange(%s::json, %s, %s::text[], %s::integer,"
    " %s::double precision, %s::double precision) AS e"
)


def test_a_version_2_worker_keeps_claiming_after_the_upgrade_to_3(config: PgConfig) -> None:
    with psycopg.connect(config.conninfo, autocommit=True) as conn:
        assert migrate(conn, config, upto=2) == 1
    broker = PostgresBroker(config, clock=ManualClock(T0))
    try:
        broker.set_pools({"two": 2})
        jobs = broker.enqueue([NewJob("t", "etl", pool="two") for _ in range(4)])
        with psycopg.connect(config.conninfo, autocommit=True) as conn:
            # the old worker holds one job, claimed before the upgrade
            found = _v1(conn, config, V2_EXCHANGE, None, "old", ["etl"], 1, LEASE, T0)
            [held] = rows.to_claim_result(found)[1].jobs
            assert held.id == jobs[0].id

            broker.setup()
            assert migrate(conn, config) == SCHEMA_VERSION and SCHEMA_VERSION >= 3

            # a new worker's one-job claim takes the pool's last slot; the old worker's
            # claim then finds the pool full, as the lock and the count are shared
            [new] = broker.claim("new", ["etl"], 1, LEASE).jobs
            assert new.id == jobs[1].id
            found = _v1(conn, config, V2_EXCHANGE, None, "old", ["etl"], 1, LEASE, T0)
            assert found == []  # and no row of kind 's' (saturated): version 4 callers ask

            # the old worker reports its job and takes the next in one call, as before
            done = rows.outcomes_json([Outcome(held.id, held.attempt, JobState.SUCCEEDED)])
            found = _v1(conn, config, V2_EXCHANGE, done, "old", ["etl"], 1, LEASE, T0)
            finished, result = rows.to_claim_result(found)
            assert finished == [1] and [j.id for j in result.jobs] == [jobs[2].id]
            assert result.jobs[0].worker == "old" and result.jobs[0].attempt == 1
        stored = broker.get(held.id)
        assert stored is not None and stored.state is JobState.SUCCEEDED
    finally:
        broker.destroy()
        broker.close()


# The exchange a version 13 broker sends (its queries.sql), finishes as JSON
V13_EXCHANGE = (
    "SELECT e.kind, e.ord, (e.job).* FROM {s}.exchange(%s::json, %s::text, %s::text[],"
    " %s::integer, %s::double precision, %s::double precision, true) AS e"
)


def test_a_version_13_store_gets_its_finished_jobs_counted_once(config: PgConfig) -> None:
    """Version 14 counts attempt endings as they happen (job_stats); the jobs a version 13
    store holds are counted once by the migration, by their state and finished_at, and the
    exchange a version 13 worker still sends after the upgrade is counted like any other."""
    new = [NewJob("t", "etl", max_attempts=3) for _ in range(4)]
    with psycopg.connect(config.conninfo, autocommit=True) as conn:
        migrate(conn, config, upto=13)
        made = [lifecycle.create(n, T0) for n in new]
        _v1(conn, config, V1_ENQUEUE, rows.new_jobs_json(new, made), T0)
        got = _v1(conn, config, V13_EXCHANGE, None, "old", ["etl"], 3, LEASE, T0)
        held = [rows.to_job(r, 2) for r in got if r[0] == "c"]
        done = [
            {"id": held[0].id, "attempt": 1, "state": "succeeded", "result": "1"},
            {"id": held[1].id, "attempt": 1, "state": "dead", "etype": "E", "emsg": "m"},
        ]
        _v1(conn, config, V13_EXCHANGE, json.dumps(done), "old", None, 0, LEASE, T0 + 61)

    clock = ManualClock(T0 + 130)
    broker = PostgresBroker(config, clock=clock)
    try:
        broker.setup()
        got_stats = broker.job_stats(minutes=3)
        assert [(m.succeeded, m.retried, m.dead, m.cancelled) for m in got_stats.minutes] == [
            (0, 0, 0, 0),
            (1, 0, 1, 0),
            (0, 0, 0, 0),
        ]
        # the old worker's attempt still running fails after the upgrade, by its own statement
        failed = [{"id": held[2].id, "attempt": 1, "state": "failed", "etype": "E", "emsg": "x"}]
        with psycopg.connect(config.conninfo, autocommit=True) as conn:
            _v1(conn, config, V13_EXCHANGE, json.dumps(failed), "old", None, 0, LEASE, T0 + 130)
        assert broker.job_stats(minutes=1).minutes[0].retried == 1
        # and the new broker's finishes are counted as well
        (again,) = broker.claim("new", ["etl"], 1, LEASE).jobs
        assert broker.finish([Outcome(again.id, again.attempt, JobState.SUCCEEDED)]) == [True]
        assert broker.job_stats(minutes=1).minutes[0].succeeded == 1
    finally:
        broker.destroy()
        broker.close()
