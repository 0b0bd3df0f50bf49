"""Job keys: every stored job's enqueue sequence, stable, unique, and read from the store."""

from __future__ import annotations

import pytest

from faena.brokers.protocol import Broker
from faena.brokers.url import open_broker
from faena.core.clock import ManualClock
from faena.core.job import NewJob, Outcome
from faena.core.states import JobState
from tests.contract.conftest import Backend

LEASE = 30.0


def test_each_job_has_a_distinct_positive_key_that_finds_it(broker: Broker) -> None:
    jobs = broker.enqueue([NewJob(task="t", queue="q") for _ in range(3)])
    [alone] = broker.enqueue([NewJob(task="t", queue="q")])  # a single enqueue (Redis' intake)
    keys = broker.job_keys([j.id for j in [*jobs, alone]] + ["no-such-job", "bad\x00id"])
    assert set(keys) == {j.id for j in [*jobs, alone]}
    assert len(set(keys.values())) == 4
    assert all(0 < k < 2**63 for k in keys.values())
    for job in [*jobs, alone]:
        found = broker.job_by_key(keys[job.id])
        assert found is not None and found.id == job.id
    assert broker.job_keys([]) == {}


def test_a_key_stays_the_same_through_claim_and_finish(broker: Broker) -> None:
    [job] = broker.enqueue([NewJob(task="t", queue="q")])
    key = broker.job_keys([job.id])[job.id]
    [claimed] = broker.claim("w", ["q"], 1, LEASE).jobs
    assert broker.job_keys([claimed.id]) == {job.id: key}
    assert broker.finish([Outcome(job.id, claimed.attempt, JobState.SUCCEEDED)]) == [True]
    found = broker.job_by_key(key)
    assert found is not None and found.state is JobState.SUCCEEDED


def test_an_unknown_key_finds_nothing(broker: Broker) -> None:
    [job] = broker.enqueue([NewJob(task="t", queue="q")])
    key = broker.job_keys([job.id])[job.id]
    for other in (key + 1000, 0, -1, 2**63, 2**64):
        assert broker.job_by_key(other) is None


def test_keys_are_the_same_from_another_process_and_after_a_restart(
    backend: Backend, broker: Broker
) -> None:
    [job] = broker.enqueue([NewJob(task="t", queue="q")])
    key = broker.job_keys([job.id])[job.id]
    if backend.url is None:
        pytest.skip("the memory broker lives in one process")
    other = open_broker(backend.url)
    try:
        assert other.job_keys([job.id]) == {job.id: key}
        found = other.job_by_key(key)
        assert found is not None and found.id == job.id
    finally:
        other.close()


def test_a_pruned_jobs_key_is_never_given_to_a_new_job(broker: Broker, clock: ManualClock) -> None:
    jobs = broker.enqueue([NewJob(task="t", queue="q") for _ in range(3)])
    keys = broker.job_keys([j.id for j in jobs])
    claimed = broker.claim("w", ["q"], 3, LEASE).jobs
    broker.finish([Outcome(j.id, j.attempt, JobState.SUCCEEDED) for j in claimed])
    clock.advance(10)
    assert broker.prune(clock.now()) == 3  # the newest jobs too: the store is empty
    fresh = broker.enqueue([NewJob(task="t", queue="q") for _ in range(2)])
    [alone] = broker.enqueue([NewJob(task="t", queue="q")])
    new_keys = broker.job_keys([j.id for j in [*fresh, alone]])
    assert min(new_keys.values()) > max(keys.values())
    assert len(set(new_keys.values())) == 3
    for key in keys.values():
        assert broker.job_by_key(key) is None
