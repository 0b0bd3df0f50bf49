"""Bulk actions: retry or cancel the jobs matching a filter, a bounded batch per call; and
prune, bounded by its limit."""

from __future__ import annotations

import pytest

from faena.brokers.bulk import MAX_BATCH
from faena.brokers.protocol import Broker
from faena.core.clock import ManualClock
from faena.core.job import ErrorInfo, Job, NewJob, Outcome
from faena.core.states import JobState
from faena.errors import ConfigError, InvalidValueError

LEASE = 30.0


def new(queue: str = "etl", task: str = "t", **kw: object) -> NewJob:
    return NewJob(task=task, queue=queue, max_attempts=1, **kw)  # type: ignore[arg-type]


def dead(broker: Broker, jobs: list[NewJob]) -> list[Job]:
    """Enqueue ``jobs`` and run each to ``dead``."""
    made = broker.enqueue(jobs)
    queues = sorted({j.queue for j in made})
    claimed = broker.claim("w1", queues, len(made), LEASE).jobs
    assert len(claimed) == len(made)
    err = ErrorInfo("E", "boom")
    broker.finish([Outcome(j.id, j.attempt, JobState.DEAD, error=err) for j in claimed])
    return made


def state_of(broker: Broker, job: Job) -> JobState:
    stored = broker.get(job.id)
    assert stored is not None
    return stored.state


def drain(call: object, limit: int, **filters: object) -> list[int]:
    counts = []
    while True:
        n = call(limit=limit, **filters)  # type: ignore[operator]
        counts.append(n)
        if n == 0 or len(counts) > 50:
            return counts


def test_retry_matching_retries_only_the_matching_dead_jobs(broker: Broker) -> None:
    etl = dead(broker, [new("etl") for _ in range(3)])
    other_queue = dead(broker, [new("dq")])
    other_task = dead(broker, [new("etl", task="u")])
    [waiting] = broker.enqueue([new("etl")])

    assert broker.retry_matching(state=JobState.DEAD, queue="etl", task="t") == 3
    assert [state_of(broker, j) for j in etl] == [JobState.QUEUED] * 3
    assert state_of(broker, other_queue[0]) is JobState.DEAD
    assert state_of(broker, other_task[0]) is JobState.DEAD
    assert state_of(broker, waiting) is JobState.QUEUED
    stored = broker.get(etl[0].id)
    assert stored is not None and stored.tries == 0  # a fresh budget, as retry gives
    assert broker.retry_matching(state=JobState.DEAD, queue="etl", task="t") == 0


def test_batches_are_bounded_by_the_limit(broker: Broker) -> None:
    dead(broker, [new() for _ in range(5)])
    assert drain(broker.retry_matching, 2, state=JobState.DEAD) == [2, 2, 1, 0]
    assert drain(broker.cancel_matching, 2, queue="etl") == [2, 2, 1, 0]
    assert broker.list_jobs(state=JobState.CANCELLED, limit=10) != []
    assert len(broker.list_jobs(state=JobState.CANCELLED, limit=10)) == 5


def test_retry_leaves_jobs_that_are_not_dead_or_cancelled_alone(broker: Broker) -> None:
    [queued, running, done] = broker.enqueue([new(), new(), new()])
    got = broker.claim("w1", ["etl"], 2, LEASE).jobs
    finished = got[0]
    broker.finish([Outcome(finished.id, finished.attempt, JobState.SUCCEEDED, result_json="1")])
    assert broker.retry_matching(queue="etl") == 0
    assert broker.retry_matching(state=JobState.SUCCEEDED) == 0
    assert broker.retry_matching(state=JobState.QUEUED) == 0
    assert {state_of(broker, j) for j in (queued, running, done)} == {
        JobState.QUEUED,
        JobState.RUNNING,
        JobState.SUCCEEDED,
    }


def test_retry_matching_takes_cancelled_jobs_too(broker: Broker) -> None:
    [job] = broker.enqueue([new()])
    broker.cancel(job.id)
    assert broker.retry_matching(task="t") == 1
    assert state_of(broker, job) is JobState.QUEUED


def test_cancel_matching_cancels_pending_and_flags_running(broker: Broker) -> None:
    jobs = broker.enqueue([new(), new(), new("dq")])
    [running] = broker.claim("w1", ["etl"], 1, LEASE).jobs
    assert broker.cancel_matching(queue="etl") == 2
    states = {j.id: state_of(broker, j) for j in jobs}
    assert states[running.id] is JobState.RUNNING
    stored = broker.get(running.id)
    assert stored is not None and stored.cancel_requested
    assert list(states.values()).count(JobState.CANCELLED) == 1
    assert state_of(broker, jobs[2]) is JobState.QUEUED  # another queue
    # flagged already: nothing more to do
    assert broker.cancel_matching(queue="etl") == 0
    assert broker.cancel_matching(state=JobState.SUCCEEDED) == 0


def test_retry_matching_leaves_a_job_whose_key_is_taken(broker: Broker) -> None:
    [old] = dead(broker, [new(idempotency_key="k")])
    broker.enqueue([new(idempotency_key="k")])  # takes the key again
    [other] = dead(broker, [new("dq")])
    assert broker.retry_matching() == 1
    assert state_of(broker, old) is JobState.DEAD
    assert state_of(broker, other) is JobState.QUEUED
    assert broker.retry_matching() == 0


@pytest.mark.parametrize(
    ("filters", "field"),
    [
        ({"state": "dead"}, "state"),
        ({"queue": ""}, "queue"),
        ({"task": "a\0b"}, "task"),
        ({"queue": 7}, "queue"),
    ],
)
def test_bad_filters_are_refused_as_list_jobs_refuses_them(
    broker: Broker, filters: dict[str, object], field: str
) -> None:
    with pytest.raises(InvalidValueError) as listed:
        broker.list_jobs(**filters)  # type: ignore[arg-type]
    for call in (broker.retry_matching, broker.cancel_matching):
        with pytest.raises(InvalidValueError) as caught:
            call(**filters)  # type: ignore[arg-type]
        assert caught.value.field == field
        assert str(caught.value) == str(listed.value)


@pytest.mark.parametrize("limit", [0, -1, MAX_BATCH + 1, 2.5, True])
def test_a_limit_out_of_bounds_is_refused_naming_the_bound(broker: Broker, limit: object) -> None:
    for call in (broker.retry_matching, broker.cancel_matching):
        with pytest.raises(ConfigError, match=str(MAX_BATCH)):
            call(limit=limit)  # type: ignore[arg-type]


def test_prune_deletes_at_most_its_limit_of_due_finished_jobs(
    broker: Broker, clock: ManualClock
) -> None:
    dead(broker, [new() for _ in range(5)])
    clock.advance(100.0)
    [young] = dead(broker, [new()])
    [pending] = broker.enqueue([new()])
    cutoff = clock.now() - 50.0
    assert broker.prune(cutoff, limit=2) == 2
    assert broker.prune(cutoff, limit=2) == 2
    assert broker.prune(cutoff, limit=2) == 1
    assert broker.prune(cutoff, limit=2) == 0
    assert {j.id for j in broker.list_jobs(limit=10)} == {young.id, pending.id}
    assert broker.prune(clock.now() + 1) == 1  # no limit: every one due
    assert [j.id for j in broker.list_jobs(limit=10)] == [pending.id]


@pytest.mark.parametrize("limit", [0, -1, 2.5, True, "10"])
def test_a_bad_prune_limit_is_refused(broker: Broker, limit: object) -> None:
    with pytest.raises(ConfigError, match="prune limit"):
        broker.prune(0.0, limit=limit)  # type: ignore[arg-type]
