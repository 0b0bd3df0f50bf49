"""Pausing a queue: claims skip it, atomically and durably; its running jobs go on."""

from __future__ import annotations

import select

import pytest

from faena.brokers.protocol import Broker
from faena.core.clock import ManualClock
from faena.core.job import Lease, NewJob, Outcome
from faena.core.states import JobState
from faena.errors import ConfigError, InvalidValueError
from tests.contract.conftest import Backend

LEASE = 30.0


def new(queue: str, **kw: object) -> NewJob:
    return NewJob(task="t", queue=queue, **kw)  # type: ignore[arg-type]


def test_a_paused_queue_is_not_claimed_while_another_queue_is(broker: Broker) -> None:
    [etl] = broker.enqueue([new("etl")])
    [dq] = broker.enqueue([new("dq")])
    assert broker.pause_queue("etl") is True
    assert broker.pause_queue("etl") is False  # paused already
    assert broker.paused_queues() == frozenset({"etl"})

    got = broker.claim("w1", ["etl", "dq"], 10, LEASE).jobs
    assert [j.id for j in got] == [dq.id]
    assert broker.claim("w1", ["etl"], 10, LEASE).jobs == []
    _, then = broker.finish_and_claim([], "w1", ["etl"], 10, LEASE)
    assert then.jobs == []
    stored = broker.get(etl.id)
    assert stored is not None and stored.state is JobState.QUEUED
    # enqueueing to a paused queue is allowed, and the job waits too
    broker.enqueue([new("etl")])
    assert broker.claim("w1", ["etl"], 10, LEASE).jobs == []


def test_resume_makes_the_queue_claimable_again(broker: Broker) -> None:
    [job] = broker.enqueue([new("etl")])
    broker.pause_queue("etl")
    assert broker.claim("w1", ["etl"], 10, LEASE).jobs == []
    assert broker.resume_queue("etl") is True
    assert broker.resume_queue("etl") is False  # not paused any more
    assert broker.paused_queues() == frozenset()
    assert [j.id for j in broker.claim("w1", ["etl"], 10, LEASE).jobs] == [job.id]


def test_resume_wakes_the_workers_waiting(broker: Broker) -> None:
    broker.enqueue([new("etl")])
    broker.pause_queue("etl")
    waker = broker.waker(["etl"])
    try:
        waker.drain()
        broker.resume_queue("etl")
        readable, _, _ = select.select([waker], [], [], 5.0)
        assert readable == [waker]
        waker.drain()
    finally:
        waker.close()


def test_next_run_at_leaves_out_paused_queues(broker: Broker, clock: ManualClock) -> None:
    broker.enqueue([new("etl", run_at=clock.now() + 60)])
    broker.pause_queue("etl")
    assert broker.next_run_at(["etl"]) is None
    broker.resume_queue("etl")
    assert broker.next_run_at(["etl"]) == pytest.approx(clock.now() + 60)


def test_running_jobs_of_a_paused_queue_keep_their_lease_and_finish(broker: Broker) -> None:
    broker.enqueue([new("etl"), new("etl")])
    [first] = broker.claim("w1", ["etl"], 1, LEASE).jobs
    broker.pause_queue("etl")
    hb = broker.heartbeat("w1", [Lease(first.id, first.attempt)], LEASE)
    assert hb.lost == frozenset()
    done, then = broker.finish_and_claim(
        [Outcome(first.id, first.attempt, JobState.SUCCEEDED, result_json="1")],
        "w1",
        ["etl"],
        10,
        LEASE,
    )
    assert done == [True] and then.jobs == []
    stored = broker.get(first.id)
    assert stored is not None and stored.state is JobState.SUCCEEDED


def test_expired_leases_of_a_paused_queue_are_still_reaped(
    broker: Broker, clock: ManualClock
) -> None:
    broker.enqueue([new("etl")])
    [job] = broker.claim("w1", ["etl"], 1, LEASE).jobs
    broker.pause_queue("etl")
    clock.advance(LEASE + 1)
    result = broker.claim("w2", ["etl"], 10, LEASE)
    assert result.jobs == [] and [r.job.id for r in result.reaped] == [job.id]
    stored = broker.get(job.id)
    assert stored is not None and stored.state is JobState.QUEUED


def test_any_queue_name_may_be_paused_with_or_without_jobs(broker: Broker) -> None:
    assert broker.pause_queue("never-used") is True
    assert broker.pause_queue("with space/and é") is True
    assert broker.paused_queues() == frozenset({"never-used", "with space/and é"})
    assert broker.resume_queue("never-used") is True
    assert broker.resume_queue("also-never-used") is False


@pytest.mark.parametrize("bad", ["", "a\0b", "\udcff", 7])
def test_bad_queue_names_are_refused_as_elsewhere(broker: Broker, bad: object) -> None:
    for call in (broker.pause_queue, broker.resume_queue):
        with pytest.raises(InvalidValueError) as caught:
            call(bad)  # type: ignore[arg-type]
        assert isinstance(caught.value, ConfigError) and caught.value.field == "queue"
    assert broker.paused_queues() == frozenset()


def test_a_pause_outlasts_reopening_the_broker(backend: Backend, clock: ManualClock) -> None:
    if backend.url is None:
        pytest.skip("the memory broker keeps nothing across instances")
    first = backend.open(clock)
    first.setup()
    first.enqueue([new("etl")])
    first.pause_queue("etl")
    first.close()
    again = backend.open(clock)
    try:
        assert again.paused_queues() == frozenset({"etl"})
        assert again.claim("w1", ["etl"], 10, LEASE).jobs == []
        again.resume_queue("etl")
        assert len(again.claim("w1", ["etl"], 10, LEASE).jobs) == 1
    finally:
        destroy = getattr(again, "destroy", None)
        if callable(destroy):
            destroy()
        again.close()
