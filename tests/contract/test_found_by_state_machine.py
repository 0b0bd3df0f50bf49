"""Divergences between backends that the state machine (test_state_machine.py) found, each
pinned down as a plain contract test on every backend."""

from __future__ import annotations

import pytest

from faena.brokers.protocol import Broker
from faena.core.clock import ManualClock
from faena.core.job import ErrorInfo, NewJob, Outcome
from faena.core.states import JobState
from faena.errors import InvalidTransitionError

LEASE = 30.0
Q = ["etl"]


def new(**kw: object) -> NewJob:
    return NewJob(task="t", queue="etl", **kw)  # type: ignore[arg-type]


def ok(job_id: str, attempt: int, result: str) -> Outcome:
    return Outcome(job_id, attempt, JobState.SUCCEEDED, result_json=result)


def dead(job_id: str, attempt: int) -> Outcome:
    return Outcome(job_id, attempt, JobState.DEAD, error=ErrorInfo("E", "first report"))


# --- an attempt reported twice: the first report wins ------------------------------------
# (SQLite wrote every success of a call in one statement, where the last duplicate won, and
# ran the successes before the other outcomes, so a success sent after a dead report of the
# same attempt replaced it; memory, PostgreSQL and Redis keep the first report)


def test_the_first_of_two_successes_of_one_attempt_wins(broker: Broker) -> None:
    broker.enqueue([new()])
    [job] = broker.claim("w1", Q, 1, LEASE).jobs
    twice = [ok(job.id, job.attempt, '"first"'), ok(job.id, job.attempt, '"second"')]
    assert broker.finish(twice) == [True, False]
    stored = broker.get(job.id)
    assert stored is not None and stored.state is JobState.SUCCEEDED
    assert stored.result == "first"
    assert [a.attempt for a in stored.attempts] == [job.attempt]


def test_a_success_sent_after_a_dead_report_of_the_attempt_changes_nothing(
    broker: Broker,
) -> None:
    broker.enqueue([new()])
    [job] = broker.claim("w1", Q, 1, LEASE).jobs
    assert broker.finish([dead(job.id, job.attempt), ok(job.id, job.attempt, "1")]) == [
        True,
        False,
    ]
    stored = broker.get(job.id)
    assert stored is not None and stored.state is JobState.DEAD and stored.result is None
    assert stored.error is not None and stored.error.message == "first report"


def test_a_duplicated_report_in_an_exchange_is_refused(broker: Broker) -> None:
    broker.enqueue([new(), new()])
    [job] = broker.claim("w1", Q, 1, LEASE).jobs
    twice = [ok(job.id, job.attempt, '"first"'), ok(job.id, job.attempt, '"second"')]
    done, nxt = broker.finish_and_claim(twice, "w1", Q, 1, LEASE)
    assert done == [True, False] and len(nxt.jobs) == 1
    stored = broker.get(job.id)
    assert stored is not None and stored.result == "first"


# --- refused operator calls leave the broker working -----------------------------------
# (PostgreSQL: psycopg prepares a statement run five times on a connection and, after a
# rollback of its own, sends DEALLOCATE ALL, which dropped the statements the broker had
# prepared itself: the next enqueue or claim on that connection failed with SQLSTATE 26000,
# "prepared statement faena_exchange does not exist")


def test_calls_after_refused_retries_and_cancels_still_work(
    broker: Broker, clock: ManualClock
) -> None:
    [a] = broker.enqueue([new()])
    broker.claim("w1", Q, 1, LEASE)
    for _ in range(30):  # enough for every pooled connection to prepare its own statements
        assert broker.get(a.id) is not None
    broker.finish([ok(a.id, 1, "1")])
    for _ in range(4):
        with pytest.raises(InvalidTransitionError):
            broker.retry(a.id)  # succeeded: refused inside its transaction
        with pytest.raises(InvalidTransitionError):
            broker.cancel(a.id)
    for _ in range(4):  # each connection of the pool in turn
        [b] = broker.enqueue([new()])
        [got] = broker.claim("w1", Q, 1, LEASE).jobs
        assert got.id == b.id
        assert broker.finish([ok(b.id, got.attempt, "2")]) == [True]


# --- saturated: runnable jobs were left because a pool or the cap was full ---------------
# (PostgreSQL said it when the cap was used up by the claim's own jobs with nothing left,
# and did not when a job was left in a full pool behind an admitted one, or when a reap in
# the same call re-queued a job while the cap was full)


def test_a_cap_used_up_with_nothing_left_is_not_saturated(broker: Broker) -> None:
    broker.set_parallelism(1)
    broker.enqueue([new()])
    got = broker.claim("w1", Q, 5, LEASE)
    assert len(got.jobs) == 1 and not got.saturated
    broker.enqueue([new()])
    left = broker.claim("w1", Q, 5, LEASE)
    assert left.jobs == [] and left.saturated


def test_a_job_left_in_a_full_pool_behind_an_admitted_one_is_saturated(broker: Broker) -> None:
    broker.enqueue([new(pool="tiny")])
    broker.claim("w1", Q, 1, LEASE)  # tiny (1 slot) is full now
    first, _ = broker.enqueue([new(), new(pool="tiny")])
    got = broker.claim("w1", Q, 5, LEASE)
    assert [j.id for j in got.jobs] == [first.id] and got.saturated


def test_a_job_a_reap_requeues_while_the_cap_is_full_is_saturated(
    broker: Broker, clock: ManualClock
) -> None:
    broker.enqueue([new()])
    broker.claim("w1", Q, 1, 100.0)
    broker.enqueue([new()])
    broker.claim("w1", Q, 1, 10.0)
    broker.set_parallelism(1)
    clock.advance(11)
    got = broker.claim("w2", Q, 5, LEASE)
    assert got.jobs == [] and len(got.reaped) == 1 and got.saturated


# --- a heartbeat naming two attempts of one job: fencing by attempt --------------------
# (PostgreSQL left the job off ``lost`` when either attempt held; memory, SQLite and Redis
# put it on. The answer: each lease stands alone, so the stale attempt is lost and the live
# one is renewed; a worker holds one attempt of a job, and reads ``lost`` against the
# attempt it sent)


def test_a_heartbeat_of_a_stale_and_the_live_attempt_loses_the_stale_one(
    broker: Broker, clock: ManualClock
) -> None:
    from faena.core.job import Lease

    [a] = broker.enqueue([new()])
    broker.claim("w1", Q, 1, 10.0)
    clock.advance(11)  # attempt 1's lease runs out; the next claim reaps and takes it again
    [again] = broker.claim("w2", Q, 1, 10.0).jobs
    assert (again.id, again.attempt) == (a.id, 2)
    clock.advance(5)
    for leases in ([Lease(a.id, 1), Lease(a.id, 2)], [Lease(a.id, 2), Lease(a.id, 1)]):
        got = broker.heartbeat("w2", leases, LEASE)
        assert got.lost == {a.id}, "attempt 1 is not the live one"
        assert got.cancel == frozenset()
        stored = broker.get(a.id)
        assert stored is not None and stored.state is JobState.RUNNING and stored.attempt == 2
        assert stored.lease_expires_at == pytest.approx(clock.now() + LEASE), (
            "the live attempt 2 is renewed"
        )
        clock.advance(1)
    assert broker.heartbeat("w2", [Lease(a.id, 2)], LEASE).lost == frozenset()
    assert broker.finish([ok(a.id, 2, "1")]) == [True]
