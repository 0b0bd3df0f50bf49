"""Bad job options and identifiers are refused the same way on every backend, before anything
is written: through the app (``enqueue_with``, ``enqueue_many``, ``@app.task``) and straight
at the broker (enqueue, claim, heartbeat, finish, release, filters, lookups)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from faena import App
from faena.brokers.protocol import Broker
from faena.core.job import ErrorInfo, Lease, NewJob, Outcome
from faena.core.states import JobState
from faena.errors import InvalidValueError

LEASE = 30.0

#: NewJob fields that no backend may store, each with what the error names
BAD_JOBS: dict[str, tuple[dict[str, Any], str]] = {
    "pool_slots=0": ({"pool": "small", "pool_slots": 0}, "pool_slots"),
    "pool_slots=-1": ({"pool": "small", "pool_slots": -1}, "pool_slots"),
    "pool_slots=1.5": ({"pool_slots": 1.5}, "pool_slots"),
    "pool_slots=2**31-1": ({"pool_slots": 2**31 - 1}, "pool_slots"),
    "max_attempts=2**31-1": ({"max_attempts": 2**31 - 1}, "max_attempts"),
    "max_attempts=-4": ({"max_attempts": -4}, "max_attempts"),
    "max_attempts=0": ({"max_attempts": 0}, "max_attempts"),
    "timeout=0": ({"timeout": 0}, "timeout"),
    "timeout=-5": ({"timeout": -5.0}, "timeout"),
    "timeout=nan": ({"timeout": float("nan")}, "timeout"),
    "priority=2**31": ({"priority": 2**31}, "priority"),
    "run_at=inf": ({"run_at": float("inf")}, "run_at"),
    "task NUL": ({"task": "a\0b"}, "task name"),
    "task empty": ({"task": ""}, "task name"),
    "task surrogate": ({"task": "a\ud800"}, "task name"),
    "queue NUL": ({"queue": "etl\0x"}, "queue"),
    "pool NUL": ({"pool": "small\0x"}, "pool"),
    "key NUL": ({"idempotency_key": "order-43\0alpha"}, "idempotency_key"),
    "key surrogate": ({"idempotency_key": "order-\udc80"}, "idempotency_key"),
    "id NUL": ({"id": "0" * 16 + "\0" + "0" * 15}, "job id"),
}


def _nothing_stored(broker: Broker) -> None:
    assert broker.list_jobs(limit=1000) == []
    assert broker.count_by_state() == {}


def _job(**fields: Any) -> NewJob:
    return NewJob(**{"task": "t", "queue": "etl", **fields})


@pytest.mark.parametrize("case", list(BAD_JOBS))
@pytest.mark.parametrize("bulk", [False, True], ids=["single", "bulk"])
def test_a_bad_job_is_refused_and_nothing_is_written(broker: Broker, case: str, bulk: bool) -> None:
    fields, named = BAD_JOBS[case]
    bad = _job(**fields)
    # the bulk path: good jobs around the bad one, enough of them for PostgreSQL's COPY
    jobs = [*(_job() for _ in range(5)), bad, *(_job() for _ in range(5))] if bulk else [bad]
    with pytest.raises(InvalidValueError) as caught:
        broker.enqueue(jobs)
    assert named in str(caught.value) and named in caught.value.field
    _nothing_stored(broker)


def test_a_key_that_only_differs_after_a_nul_does_not_reach_another_job(broker: Broker) -> None:
    with pytest.raises(InvalidValueError, match="NUL"):
        broker.enqueue([_job(idempotency_key="order-43\0alpha")])
    [first] = broker.enqueue([_job(idempotency_key="order-43")])
    [second] = broker.enqueue([_job(idempotency_key="order-43\u00e9")])
    assert first.id != second.id
    assert broker.get(first.id).idempotency_key == "order-43"  # type: ignore[union-attr]


# --- through the app ------------------------------------------------------------------------

BAD_OPTIONS: dict[str, dict[str, Any]] = {
    "pool_slots=0": {"pool": "small", "pool_slots": 0},
    "pool_slots=-1": {"pool": "small", "pool_slots": -1},
    "retries=-5": {"retries": -5},
    "retries=2**31-2": {"retries": 2**31 - 2},
    "timeout=0": {"timeout": 0},
    "timeout=-5": {"timeout": -5},
    "priority=True": {"priority": True},
    "delay=-1": {"delay": -1},
    "queue NUL": {"queue": "etl\0x"},
    "queue newline": {"queue": "etl\n"},
    "pool NUL": {"pool": "small\0x"},
    "key NUL": {"idempotency_key": "order-43\0alpha"},
    "key empty": {"idempotency_key": ""},
}


@pytest.mark.parametrize("case", list(BAD_OPTIONS))
def test_enqueue_options_are_checked_on_every_path(broker: Broker, case: str) -> None:
    app = App(broker=broker)

    @app.task(name="etl.load", queue="etl")
    def load(n: int) -> int:
        return n

    options = BAD_OPTIONS[case]
    paths: list[Callable[[], object]] = [
        lambda: load.enqueue_with([1], **options),
        lambda: load.enqueue_many([([1], {}), ([2], {})], **options),
        lambda: app.enqueue("etl.load", [1], **options),
        lambda: app.enqueue("not.registered", [1], **options),
    ]
    for path in paths:
        with pytest.raises(InvalidValueError):
            path()
    _nothing_stored(broker)


@pytest.mark.parametrize(
    "options",
    [
        {"pool_slots": 0},
        {"retries": -5},
        {"timeout": 0},
        {"timeout": -5},
        {"priority": 2**40},
        {"queue": "a\0b"},
        {"name": "a\0b"},
    ],
    ids=str,
)
def test_task_options_are_the_same_checks(options: dict[str, Any]) -> None:
    app = App(broker="memory://")
    with pytest.raises(InvalidValueError):
        app.task(**options)(lambda: None)


def test_a_nul_task_name_is_refused_by_name(broker: Broker) -> None:
    app = App(broker=broker)
    with pytest.raises(InvalidValueError, match="task name"):
        app.enqueue("a\0b", [1])
    _nothing_stored(broker)


# --- workers and operators ------------------------------------------------------------------

NUL_WORKER = "fz\0w"


def test_a_worker_id_with_nul_claims_nothing(broker: Broker) -> None:
    [job] = broker.enqueue([_job()])
    with pytest.raises(InvalidValueError, match="worker id"):
        broker.claim(NUL_WORKER, ["etl"], 10, LEASE)
    with pytest.raises(InvalidValueError, match="worker id"):
        broker.finish_and_claim([], NUL_WORKER, ["etl"], 10, LEASE)
    with pytest.raises(InvalidValueError, match="worker id"):
        broker.claim("", ["etl"], 10, LEASE)
    stored = broker.get(job.id)
    assert stored is not None and stored.state is JobState.QUEUED and stored.attempt == 0
    # the worker whose id is the text before the NUL did not get a job it could complete
    [claimed] = broker.claim("fz", ["etl"], 10, LEASE).jobs
    assert claimed.worker == "fz"
    with pytest.raises(InvalidValueError, match="worker id"):
        broker.heartbeat(NUL_WORKER, [Lease(claimed.id, claimed.attempt)], LEASE)


def test_a_queue_asked_for_with_nul_is_refused(broker: Broker) -> None:
    [job] = broker.enqueue([_job()])
    for queues in (["etl\0x"], ["etl", "a\0"]):
        with pytest.raises(InvalidValueError, match="queue"):
            broker.claim("w", queues, 10, LEASE)
        with pytest.raises(InvalidValueError, match="queue"):
            broker.next_run_at(queues)
    stored = broker.get(job.id)
    assert stored is not None and stored.state is JobState.QUEUED and stored.attempt == 0


def test_finish_and_claim_refuses_before_it_finishes(broker: Broker) -> None:
    broker.enqueue([_job(), _job()])
    [running] = broker.claim("w", ["etl"], 1, LEASE).jobs
    done = Outcome(running.id, running.attempt, JobState.SUCCEEDED, result_json="1")
    with pytest.raises(InvalidValueError, match="queue"):
        broker.finish_and_claim([done], "w", ["etl\0"], 1, LEASE)
    stored = broker.get(running.id)
    assert stored is not None and stored.state is JobState.RUNNING


@pytest.mark.parametrize(
    "filters",
    [
        {"task": "a\0b"},
        {"queue": "etl\0"},
        {"task": ""},
        {"queue": ""},
        {"state": "queued"},
        {"limit": -1},
        {"offset": -1},
    ],
    ids=str,
)
def test_list_filters_no_job_could_match_are_refused(
    broker: Broker, filters: dict[str, Any]
) -> None:
    broker.enqueue([_job(task="a")])
    with pytest.raises(InvalidValueError):
        broker.list_jobs(**filters)


def test_job_ids_with_nul_are_refused(broker: Broker) -> None:
    [job] = broker.enqueue([_job()])
    bad = job.id + "\0x"
    for call in (
        lambda: broker.get(bad),
        lambda: broker.retry(bad),
        lambda: broker.cancel(bad),
        lambda: broker.release([Lease(bad, 1)]),
        lambda: broker.finish([Outcome(bad, 1, JobState.SUCCEEDED, result_json="1")]),
    ):
        with pytest.raises(InvalidValueError, match="job id"):
            call()
    stored = broker.get(job.id)
    assert stored is not None and stored.state is JobState.QUEUED


@pytest.mark.parametrize("state", [JobState.DEAD, JobState.FAILED])
def test_an_error_text_with_nul_or_a_lone_surrogate_is_stored_escaped(
    broker: Broker, state: JobState
) -> None:
    broker.enqueue([_job()])
    [running] = broker.claim("w", ["etl"], 1, LEASE).jobs
    error = ErrorInfo("Bad\0Error", "bad\0msg \ud800 é", "line\0two")
    assert broker.finish([Outcome(running.id, running.attempt, state, error=error)]) == [True]
    stored = broker.get(running.id)
    assert stored is not None and stored.state is state
    assert stored.error == ErrorInfo("Bad\\x00Error", "bad\\x00msg \\ud800 é", "line\\x00two")
