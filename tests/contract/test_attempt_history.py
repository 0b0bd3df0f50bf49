"""Every ended attempt is kept on the job, the last MAX_ATTEMPTS_KEPT of them (issue 19):
what ``get`` returns on every backend after failures, successes, lost leases and releases."""

from __future__ import annotations

import sqlite3
from urllib.parse import parse_qs, urlsplit

import pytest

from faena.brokers.protocol import Broker
from faena.core.attempts import MAX_ATTEMPTS_KEPT, AttemptOutcome
from faena.core.clock import ManualClock
from faena.core.job import ErrorInfo, Job, Lease, NewJob, Outcome
from faena.core.lifecycle import WORKER_LOST
from faena.core.states import JobState
from tests.contract.conftest import Backend

LEASE = 30.0
Q = ["etl"]


def _claim(broker: Broker, worker: str = "w1") -> Job:
    (job,) = broker.claim(worker, Q, 1, LEASE).jobs
    return job


def _fail(broker: Broker, clock: ManualClock, job: Job, n: int) -> None:
    error = ErrorInfo("ValueError", f"bad {n}", f"Traceback {n}")
    failed = Outcome(job.id, job.attempt, JobState.FAILED, error=error, retry_at=clock.now())
    assert broker.finish([failed])
    clock.advance(1)


def _history(broker: Broker, job_id: str) -> Job:
    job = broker.get(job_id)
    assert job is not None
    return job


def test_two_failures_then_success(broker: Broker, clock: ManualClock) -> None:
    (new,) = broker.enqueue([NewJob("t", "etl", max_attempts=5)])
    assert _history(broker, new.id).attempts == ()
    for n in (1, 2):
        job = _claim(broker, f"w{n}")
        clock.advance(2)
        _fail(broker, clock, job, n)
    job = _claim(broker, "w3")
    clock.advance(3)
    assert broker.finish([Outcome(job.id, job.attempt, JobState.SUCCEEDED, result_json="1")])
    done = _history(broker, new.id)
    assert [a.attempt for a in done.attempts] == [1, 2, 3]
    assert [a.outcome for a in done.attempts] == [
        AttemptOutcome.FAILED,
        AttemptOutcome.FAILED,
        AttemptOutcome.SUCCEEDED,
    ]
    assert [a.worker for a in done.attempts] == ["w1", "w2", "w3"]
    first, second, third = done.attempts
    assert (first.error_type, first.error_message, first.traceback) == (
        "ValueError",
        "bad 1",
        "Traceback 1",
    )
    assert second.error_message == "bad 2"
    assert third.error_type is None and third.error_message is None
    assert first.started_at is not None and first.finished_at == pytest.approx(first.started_at + 2)
    assert third.finished_at >= third.started_at  # type: ignore[operator]


def test_dead_and_cancelled_are_recorded(broker: Broker, clock: ManualClock) -> None:
    (a, b) = broker.enqueue([NewJob("t", "etl", max_attempts=1), NewJob("t", "etl")])
    ja, jb = broker.claim("w", Q, 2, LEASE).jobs
    error = ErrorInfo("KeyError", "gone")
    assert broker.finish(
        [
            Outcome(ja.id, ja.attempt, JobState.DEAD, error=error),
            Outcome(jb.id, jb.attempt, JobState.CANCELLED),
        ]
    ) == [True, True]
    (dead,) = _history(broker, a.id).attempts
    assert (dead.outcome, dead.error_type, dead.error_message) == (
        AttemptOutcome.DEAD,
        "KeyError",
        "gone",
    )
    (cancelled,) = _history(broker, b.id).attempts
    assert cancelled.outcome is AttemptOutcome.CANCELLED


def test_bounded_to_the_last_attempts(broker: Broker, clock: ManualClock) -> None:
    total = MAX_ATTEMPTS_KEPT + 3
    (new,) = broker.enqueue([NewJob("t", "etl", max_attempts=total + 1)])
    for n in range(1, total + 1):
        _fail(broker, clock, _claim(broker), n)
    kept = _history(broker, new.id).attempts
    assert len(kept) == MAX_ATTEMPTS_KEPT
    assert [a.attempt for a in kept] == list(range(4, total + 1))
    assert kept[-1].error_message == f"bad {total}"


def test_reaped_lease_records_a_lost_attempt(broker: Broker, clock: ManualClock) -> None:
    (new,) = broker.enqueue([NewJob("t", "etl", max_attempts=3)])
    _claim(broker, "gone")
    clock.advance(LEASE + 1)
    assert [r.job.id for r in broker.reap()] == [new.id]
    (lost,) = _history(broker, new.id).attempts
    assert (lost.attempt, lost.worker, lost.outcome, lost.error_type) == (
        1,
        "gone",
        AttemptOutcome.LOST,
        WORKER_LOST,
    )
    assert lost.finished_at == clock.now()


def test_release_records_released(broker: Broker, clock: ManualClock) -> None:
    (new,) = broker.enqueue([NewJob("t", "etl")])
    job = _claim(broker, "draining")
    assert broker.release([Lease(job.id, job.attempt)]) == [True]
    (released,) = _history(broker, new.id).attempts
    assert (released.attempt, released.worker, released.outcome) == (
        1,
        "draining",
        AttemptOutcome.RELEASED,
    )
    assert released.error_type is None


def test_late_finish_of_a_superseded_attempt_adds_nothing(
    broker: Broker, clock: ManualClock
) -> None:
    (new,) = broker.enqueue([NewJob("t", "etl", max_attempts=3)])
    old = _claim(broker, "slow")
    clock.advance(LEASE + 1)
    broker.reap()
    _claim(broker, "fresh")
    late = [Outcome(old.id, old.attempt, JobState.SUCCEEDED, result_json="1")]
    assert broker.finish(late) == [False]
    assert broker.release([Lease(old.id, old.attempt)]) == [False]
    assert [a.outcome for a in _history(broker, new.id).attempts] == [AttemptOutcome.LOST]


def _corrupt_history(backend: Backend, job_id: str, value: str) -> None:
    assert backend.url is not None
    if backend.name == "sqlite":
        path = backend.url.removeprefix("sqlite:///").split("?")[0]
        with sqlite3.connect(path) as conn:
            conn.execute("UPDATE faena_jobs SET attempts = ? WHERE id = ?", (value, job_id))
        return
    import redis

    prefix = parse_qs(urlsplit(backend.url).query)["prefix"][0]
    client = redis.Redis.from_url(backend.url.split("?")[0])
    try:
        key = "{" + prefix + "}:j:" + job_id
        assert client.exists(key)
        client.hset(key, "attempts", value)
    finally:
        client.close()


@pytest.mark.parametrize("value", ["not json", '{"n": 1}', '[{"n": "x"}]', "[1, 2]"])
def test_a_damaged_history_breaks_neither_claim_nor_get(
    backend: Backend, broker: Broker, clock: ManualClock, value: str
) -> None:
    if backend.name not in ("sqlite", "redis"):
        # memory keeps records, not text; PostgreSQL keeps a jsonb column that only faena's
        # SQL writes (text that is not JSON cannot be stored there; valid JSON of the wrong
        # shape is not handled there: see the closing note of issue 19)
        why = {"memory": "it keeps records, not text", "postgres": "its history is typed jsonb"}
        pytest.skip(f"the {backend.name} broker cannot hold a damaged history: {why[backend.name]}")
    (new,) = broker.enqueue([NewJob("t", "etl", max_attempts=3)])
    _fail(broker, clock, _claim(broker), 1)
    _corrupt_history(backend, new.id, value)
    assert _history(broker, new.id).attempts == ()  # nothing readable, the job still shown
    job = _claim(broker)
    assert job.id == new.id
    assert broker.finish([Outcome(job.id, job.attempt, JobState.SUCCEEDED, result_json="1")])
    done = _history(broker, new.id)
    assert done.state is JobState.SUCCEEDED
    assert [a.outcome for a in done.attempts][-1] is AttemptOutcome.SUCCEEDED
    assert len(done.attempts) == 1  # the damaged records are not shown
