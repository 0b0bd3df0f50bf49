"""PostgreSQL broker specifics beyond the contract: transactional enqueue, URLs, schema
checks, and the admission paths the contract suite does not reach."""

from __future__ import annotations

import select
import uuid
from collections.abc import Iterator

import psycopg
import pytest
from psycopg.rows import dict_row
from tests.conftest import PG_URL, need, port_open

from faena.brokers.postgres import PostgresBroker
from faena.brokers.postgres.config import PgConfig
from faena.brokers.postgres.rows import JOB_COLUMNS
from faena.brokers.postgres.schema import SCHEMA_VERSION
from faena.core.clock import ManualClock
from faena.core.job import ErrorInfo, NewJob, Outcome
from faena.core.states import JobState
from faena.errors import BrokerError, BrokerURLError, SchemaError, UnknownPoolError

pytestmark = pytest.mark.postgres


def _url(schema: str) -> str:
    return f"{PG_URL}{'&' if '?' in PG_URL else '?'}schema={schema}"


@pytest.fixture
def schema() -> str:
    need(port_open("127.0.0.1", 5432), "PostgreSQL is not running on 127.0.0.1:5432")
    return f"t_{uuid.uuid4().hex[:12]}"


@pytest.fixture
def broker(schema: str) -> Iterator[PostgresBroker]:
    b = PostgresBroker.from_url(_url(schema), clock=ManualClock())
    b.setup()
    b.set_pools({"tiny": 1})
    yield b
    b.destroy()
    b.close()


def test_transactional_enqueue_follows_the_callers_transaction(broker: PostgresBroker) -> None:
    waker = broker.waker(["etl"])
    try:
        with psycopg.connect(PG_URL) as conn:
            [job] = broker.enqueue([NewJob("t", "etl")], connection=conn)
            assert broker.get(job.id) is None  # not visible before the caller commits
            conn.rollback()
        assert broker.get(job.id) is None
        assert broker.list_jobs() == []

        waker.drain()
        with psycopg.connect(PG_URL) as conn:
            with conn.transaction():
                conn.execute("SELECT 1")  # the caller's own work
                [kept] = broker.enqueue([NewJob("t", "etl")], connection=conn)
                assert select.select([waker], [], [], 0.3)[0] == []  # no wake-up yet
            stored = broker.get(kept.id)
            assert stored is not None and stored.state is JobState.QUEUED
        assert select.select([waker], [], [], 5.0)[0] == [waker]  # NOTIFY came with COMMIT
    finally:
        waker.close()


def test_transactional_enqueue_refuses_unknown_pools_without_breaking_the_transaction(
    broker: PostgresBroker,
) -> None:
    with psycopg.connect(PG_URL, row_factory=dict_row) as conn:  # any row factory will do
        with pytest.raises(UnknownPoolError, match="gpu"):
            broker.enqueue([NewJob("t", "etl", pool="gpu")], connection=conn)
        [job] = broker.enqueue([NewJob("t", "etl")], connection=conn)
        conn.commit()
    assert broker.get(job.id) is not None


def test_a_full_pool_ahead_does_not_hide_later_jobs(broker: PostgresBroker) -> None:
    # more candidates of a full pool than the first look reads: the claim looks further
    broker.enqueue([NewJob("t", "etl", pool="tiny") for _ in range(100)])
    [other] = broker.enqueue([NewJob("t", "etl")])
    got = broker.claim("w", ["etl"], 5, 30).jobs
    assert len(got) == 2 and got[1].id == other.id


def test_claim_across_queues_keeps_priority_then_fifo(broker: PostgresBroker) -> None:
    a = broker.enqueue([NewJob("t", "a")])[0]
    b = broker.enqueue([NewJob("t", "b", priority=3)])[0]
    c = broker.enqueue([NewJob("t", "a", priority=3)])[0]
    d = broker.enqueue([NewJob("t", "b")])[0]
    got = broker.claim("w", ["a", "b"], 10, 30).jobs
    assert [j.id for j in got] == [b.id, c.id, a.id, d.id]


def test_duplicate_writes_in_one_group_apply_once(broker: PostgresBroker) -> None:
    from faena.core.job import Lease, Outcome

    broker.enqueue([NewJob("t", "etl")])
    [job] = broker.claim("w", ["etl"], 1, 30).jobs
    ok = Outcome(job.id, job.attempt, JobState.SUCCEEDED)
    stale = Outcome(job.id, job.attempt + 1, JobState.SUCCEEDED)
    assert broker.finish([stale, ok, ok]) == [False, True, False]
    assert broker.release([Lease(job.id, job.attempt)]) == [False]


def test_a_group_is_written_whole_with_every_field(broker: PostgresBroker) -> None:
    # groups of 8 and more go in with COPY: the same jobs as one by one would store
    clock = broker._clock
    assert isinstance(clock, ManualClock)
    group = [
        NewJob(
            "t",
            "etl",
            args_json=f'["a\\tb\\n", {i}]',
            kwargs_json='{"k": "\\u00e9"}',
            priority=i % 3,
            timeout=600 if i % 2 else 1.5,
            max_attempts=2,
            run_at=clock.now() + 60 if i == 7 else None,
        )
        for i in range(12)
    ] + [NewJob("t", "dq", pool="tiny", pool_slots=2)]
    made = broker.enqueue(group)
    for new, job in zip(group, made, strict=True):
        stored = broker.get(new.id)
        assert stored == job
        assert (stored.args_json, stored.kwargs_json) == (new.args_json, new.kwargs_json)
        assert stored.timeout == new.timeout and stored.priority == new.priority
    assert made[7].state is JobState.SCHEDULED and made[0].state is JobState.QUEUED
    assert [j.id for j in broker.list_jobs(limit=3)] == [g.id for g in group[:-4:-1]]


def test_a_group_sent_again_returns_the_stored_jobs(broker: PostgresBroker) -> None:
    first = [NewJob("t", "etl") for _ in range(10)]
    stored = broker.enqueue(first)
    [running] = broker.claim("w", ["etl"], 1, 30).jobs
    more = [NewJob("t", "etl") for _ in range(10)]
    again = broker.enqueue(first[:5] + more)  # a producer whose reply was lost, and more
    assert [j.id for j in again] == [j.id for j in stored[:5]] + [j.id for j in more]
    assert again[0] == running and again[1] == stored[1]
    assert len(broker.list_jobs(limit=100)) == 20


def test_a_group_with_an_unknown_pool_writes_nothing(broker: PostgresBroker) -> None:
    group = [NewJob("t", "etl") for _ in range(10)] + [NewJob("t", "etl", pool="gpu")]
    with pytest.raises(UnknownPoolError, match="gpu"):
        broker.enqueue(group)
    assert broker.list_jobs() == []


def test_a_group_wakes_the_workers(broker: PostgresBroker) -> None:
    waker = broker.waker(["etl"])
    try:
        assert waker.wait_listening(5.0)
        waker.drain()
        broker.enqueue([NewJob("t", "etl") for _ in range(10)])
        assert select.select([waker], [], [], 5.0)[0] == [waker]
    finally:
        waker.close()


def test_a_failed_attempt_wakes_the_workers(broker: PostgresBroker) -> None:
    # its retry may be due at once; a success wakes nobody
    broker.enqueue([NewJob("t", "etl"), NewJob("t", "etl")])
    a, b = broker.claim("w", ["etl"], 2, 30).jobs
    waker = broker.waker(["etl"])
    try:
        assert waker.wait_listening(5.0)
        waker.drain()
        assert broker.finish([Outcome(a.id, a.attempt, JobState.SUCCEEDED)]) == [True]
        assert select.select([waker], [], [], 0.3)[0] == []
        failed = Outcome(b.id, b.attempt, JobState.FAILED, error=ErrorInfo("E", "m"), retry_at=0)
        assert broker.finish([failed]) == [True]
        assert select.select([waker], [], [], 5.0)[0] == [waker]
    finally:
        waker.close()


def test_finish_alone_leaves_expired_leases_to_reap(broker: PostgresBroker) -> None:
    # the worker's drain reports with finish: the leases it finds expired are reaped (and
    # reported) by reap and claim, never dropped silently by finish
    clock = broker._clock
    assert isinstance(clock, ManualClock)
    broker.enqueue([NewJob("t", "etl"), NewJob("t", "etl")])
    lost, kept = broker.claim("w", ["etl"], 2, 30).jobs
    clock.advance(31)
    ok = Outcome(kept.id, kept.attempt, JobState.SUCCEEDED, result_json="1")
    assert broker.finish([ok]) == [True]  # not reaped yet: still its attempt
    stored = broker.get(lost.id)
    assert stored is not None and stored.state is JobState.RUNNING
    assert [r.job.id for r in broker.reap()] == [lost.id]


def test_job_columns_match_the_table(broker: PostgresBroker, schema: str) -> None:
    with psycopg.connect(PG_URL) as conn:
        cols = [
            r[0]
            for r in conn.execute(
                "SELECT column_name FROM information_schema.columns"
                " WHERE table_schema = %s AND table_name = 'jobs' ORDER BY ordinal_position",
                (schema,),
            )
        ]
    assert tuple(cols) == JOB_COLUMNS


def test_setup_is_idempotent_and_records_the_version(broker: PostgresBroker, schema: str) -> None:
    broker.setup()
    with psycopg.connect(PG_URL) as conn:
        row = conn.execute(f'SELECT max(version) FROM "{schema}".faena_schema_version').fetchone()
    assert row == (SCHEMA_VERSION,)


def test_setup_refuses_a_newer_schema(broker: PostgresBroker, schema: str) -> None:
    with psycopg.connect(PG_URL) as conn:
        conn.execute(
            f'INSERT INTO "{schema}".faena_schema_version (version, faena_version)'
            " VALUES (999, '9.9')"
        )
    with pytest.raises(SchemaError, match=r"version 999.*upgrade faena"):
        broker.setup()


def test_setup_refuses_a_schema_that_is_not_faenas(schema: str) -> None:
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
        conn.execute(f'CREATE TABLE "{schema}".jobs (x int)')
    b = PostgresBroker.from_url(_url(schema))
    try:
        with pytest.raises(SchemaError, match="not faena's"):
            b.setup()
    finally:
        with psycopg.connect(PG_URL, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
        b.close()


def test_unreachable_server_names_the_url_without_the_password() -> None:
    b = PostgresBroker.from_url("postgresql://postgres:s3cret@127.0.0.1:1/test?schema=x")
    with pytest.raises(BrokerError) as info:
        b.setup()
    message = str(info.value)
    assert "postgresql://postgres:***@127.0.0.1:1/test" in message
    assert "s3cret" not in message and "FAENA_BROKER_URL" in message
    assert info.value.__cause__ is not None
    b.close()


def test_url_parameters() -> None:
    cfg = PgConfig.parse("postgres://u:p@h:5433/db?sslmode=disable&schema=jobs&pool_size=3")
    assert (cfg.schema, cfg.pool_size) == ("jobs", 3)
    assert cfg.conninfo == "postgresql://u:p@h:5433/db?sslmode=disable"
    assert PgConfig.parse("postgresql://h/db").schema == "faena"
    with pytest.raises(BrokerURLError, match="schema"):
        PgConfig.parse("postgresql://h/db?schema=bad-name")
    with pytest.raises(BrokerURLError, match="pool_size"):
        PgConfig.parse("postgresql://h/db?pool_size=0")


# the prepared statements (exchange, enqueue): parameters sent as text, one preparation per
# connection, driver errors wrapped


def test_names_with_quotes_and_accents_go_through_the_prepared_statements(
    broker: PostgresBroker,
) -> None:
    queue = 'cola "ñ" \\ {x,y}'
    [job] = broker.enqueue([NewJob("t", queue)])
    [other] = broker.enqueue([NewJob("t", "plain")])
    got = broker.claim('wörker "1"', ["plain", queue], 5, 30).jobs
    assert {j.id for j in got} == {job.id, other.id}
    stored = broker.get(job.id)
    assert stored is not None and stored.queue == queue and stored.worker == 'wörker "1"'


def test_a_connection_lost_between_calls_is_replaced_and_prepared_again(
    broker: PostgresBroker, schema: str, caplog: pytest.LogCaptureFixture
) -> None:
    broker.enqueue([NewJob("t", "etl") for _ in range(3)])
    [first] = broker.claim("w", ["etl"], 1, 30).jobs
    with psycopg.connect(PG_URL, autocommit=True) as admin:  # every pooled connection
        killed = admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE pid <> pg_backend_pid() AND strpos(query, %s) > 0",
            [schema],
        ).fetchall()
    assert killed
    ok = Outcome(first.id, first.attempt, JobState.SUCCEEDED, result_json="1")
    done, got = broker.finish_and_claim([ok], "w", ["etl"], 1, 30)
    assert done == [True] and len(got.jobs) == 1
    assert any(r.msg == "postgres.retry" for r in caplog.records), "the call was not retried"
    assert len(broker.enqueue([NewJob("t", "etl")])) == 1


def test_a_server_error_in_a_prepared_statement_is_a_broker_error(
    broker: PostgresBroker, schema: str
) -> None:
    broker.claim("w", ["etl"], 1, 30)  # prepared on the pooled connection
    args = "(json, text, text[], integer, double precision, double precision, boolean)"
    with psycopg.connect(PG_URL, autocommit=True) as admin:
        admin.execute(f'ALTER FUNCTION "{schema}".exchange{args} RENAME TO exchange_gone')
    with pytest.raises(BrokerError, match=r"PostgreSQL claim failed .*exchange"):
        broker.claim("w", ["etl"], 1, 30)
    with psycopg.connect(PG_URL, autocommit=True) as admin:
        admin.execute(f'ALTER FUNCTION "{schema}".exchange_gone{args} RENAME TO exchange')
    assert broker.claim("w", ["etl"], 1, 30).jobs == []  # the connection still works


# a claim of one job (what a worker's slot asks for): candidate locked first, admitted in its
# update, the full search when it does not fit


def test_a_one_job_claim_skips_a_job_its_pool_has_no_room_for(broker: PostgresBroker) -> None:
    [held] = broker.enqueue([NewJob("t", "etl", pool="tiny")])
    assert [j.id for j in broker.claim("w", ["etl"], 1, 30).jobs] == [held.id]
    broker.enqueue([NewJob("t", "etl", pool="tiny"), NewJob("t", "etl", pool="tiny", pool_slots=2)])
    [other] = broker.enqueue([NewJob("t", "etl")])
    # the first candidate's pool is full, and the second needs more than it has: the next
    assert [j.id for j in broker.claim("w", ["etl"], 1, 30).jobs] == [other.id]
    assert broker.claim("w", ["etl"], 1, 30).jobs == []


def test_a_one_job_claim_respects_the_parallelism_cap(broker: PostgresBroker) -> None:
    broker.set_parallelism(1)
    a, b = broker.enqueue([NewJob("t", "etl"), NewJob("t", "etl")])
    [got] = broker.claim("w", ["etl"], 1, 30).jobs
    assert got.id == a.id
    assert broker.claim("w", ["etl"], 1, 30).jobs == []
    ok = Outcome(got.id, got.attempt, JobState.SUCCEEDED, result_json="1")
    done, result = broker.finish_and_claim([ok], "w", ["etl"], 1, 30)
    assert done == [True] and [j.id for j in result.jobs] == [b.id]
    broker.set_parallelism(0)
    assert broker.claim("w", ["etl"], 1, 30).jobs == []


def test_a_claim_waits_for_the_lock_holder_and_counts_what_it_committed(
    broker: PostgresBroker, schema: str
) -> None:
    import threading

    first, second = broker.enqueue([NewJob("t", "etl", pool="tiny") for _ in range(2)])
    got: list[list[str]] = []
    with psycopg.connect(PG_URL, autocommit=True) as other:
        with other.transaction():
            # another claimer takes the pool's one slot and holds the claim lock, uncommitted
            rows = other.execute(
                f'SELECT (e.job).id FROM "{schema}".exchange(NULL, %s, %s, 1, 30, %s) AS e',
                ["x", ["etl"], broker._clock.now()],
            ).fetchall()
            assert rows == [(first.id,)]
            waiting = threading.Thread(
                target=lambda: got.append([j.id for j in broker.claim("w", ["etl"], 1, 30).jobs])
            )
            waiting.start()
            waiting.join(0.5)
            assert waiting.is_alive(), "the claim did not wait for the claim lock"
        waiting.join(10)
    # the second job was free to lock, but its pool's slot was taken by the commit it waited for
    assert got == [[]]
    stored = broker.get(second.id)
    assert stored is not None and stored.state is JobState.QUEUED


# one job without a caller's connection: a plain INSERT, the enqueue function when it is
# skipped


def test_one_job_sent_again_returns_the_stored_job(broker: PostgresBroker) -> None:
    clock = broker._clock
    assert isinstance(clock, ManualClock)
    new = NewJob("t", "etl", args_json='["é", {"k": "ü\\"q"}]', timeout=2.5)
    [first] = broker.enqueue([new])
    clock.advance(10)
    [again] = broker.enqueue([new])  # a retried call after a lost reply
    assert again == first
    stored = broker.get(new.id)
    assert stored == first and stored.args_json == '["é", {"k": "ü\\"q"}]'
    assert stored.timeout == 2.5 and stored.state is JobState.QUEUED


def test_one_job_with_a_taken_key_returns_the_holder(broker: PostgresBroker) -> None:
    [holder] = broker.enqueue([NewJob("t", "etl", idempotency_key="k1")])
    [same] = broker.enqueue([NewJob("t", "etl", idempotency_key="k1", run_at=10**10)])
    assert same.id == holder.id
    assert len(broker.list_jobs()) == 1
    [later] = broker.enqueue([NewJob("t", "etl", run_at=10**10)])
    assert later.state is JobState.SCHEDULED and later.run_at == 10**10


def test_one_job_of_an_unknown_pool_writes_nothing(broker: PostgresBroker) -> None:
    with pytest.raises(UnknownPoolError):
        broker.enqueue([NewJob("t", "etl", pool="nope")])
    assert broker.list_jobs() == []


def test_many_queue_lists_are_claimed_from_and_only_some_are_remembered(
    broker: PostgresBroker,
) -> None:
    from faena.brokers.postgres import broker as pg_broker

    lists = [[f"q{i}", "shared"] for i in range(pg_broker._ARRAYS_KEPT + 20)]
    broker.enqueue([NewJob("t", "shared") for _ in lists])
    claimed = [broker.claim("w", queues, 1, 30.0).jobs for queues in lists]
    assert all(len(jobs) == 1 for jobs in claimed)
    assert len(broker._arrays) == pg_broker._ARRAYS_KEPT


def test_stats_counters_are_one_row_per_backend_and_folded_by_prune(schema: str) -> None:
    """Two brokers (two backends) finishing in one minute write a counter row each (no
    finish waits on another's), job_stats adds them up; a prune once the minute is over folds
    them into one row (shard 0), the counts unchanged, and leaves the current minute alone."""
    clock = ManualClock()
    t0 = clock.now()
    one = PostgresBroker.from_url(_url(schema), clock=clock)
    one.setup()
    two = PostgresBroker.from_url(_url(schema), clock=clock)
    try:
        one.enqueue([NewJob("t", "q") for _ in range(4)])
        for b in (one, two, one):
            (job,) = b.claim("w", ["q"], 1, 60.0).jobs
            assert b.finish([Outcome(job.id, job.attempt, JobState.SUCCEEDED)]) == [True]

        def rows() -> list[tuple[float, int, int]]:
            with psycopg.connect(PG_URL) as conn:
                got = conn.execute(
                    f'SELECT minute, shard, n FROM "{schema}".job_minutes ORDER BY minute, n'
                ).fetchall()
            return [(float(m), int(s), int(n)) for m, s, n in got]

        first = rows()
        assert [(m, n) for m, _, n in first] == [(t0, 1), (t0, 2)]
        assert first[0][1] != first[1][1] and 0 not in {s for _, s, _ in first}
        clock.set(t0 + 60)  # the next minute: t0's is still left to the finishes
        (job,) = one.claim("w", ["q"], 1, 60.0).jobs
        one.finish([Outcome(job.id, job.attempt, JobState.SUCCEEDED)])
        one.prune(t0 - 3600)
        assert len(rows()) == 3
        clock.set(t0 + 130)
        one.prune(t0 - 3600)  # t0's minute is over: folded; t0 + 60 is the previous one
        assert rows()[0] == (t0, 0, 3) and len(rows()) == 2
        assert [m.succeeded for m in one.job_stats(minutes=3).minutes] == [3, 1, 0]
    finally:
        two.close()
        one.destroy()
        one.close()
