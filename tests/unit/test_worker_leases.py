"""The worker's lease callbacks on their own: what a heartbeat's answer stops, and what not."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
from tests.unit.test_worker_ledger import job

from faena.brokers.protocol import HeartbeatResult
from faena.core import events as ev
from faena.core.clock import ManualClock
from faena.core.job import Job, Lease
from faena.task import Task
from faena.worker.events import WorkerEvents
from faena.worker.leases import Leases
from faena.worker.ledger import SlotLedger
from faena.worker.results import Completions


class Interrupts:
    """An executor that records the interrupts it is asked for (it runs nothing)."""

    def __init__(self) -> None:
        self.interrupted: list[tuple[str, str]] = []

    def submit(self, job: Job, task: Task[Any, Any]) -> None:
        raise AssertionError("not used here")

    def interrupt(self, job_id: str, reason: str) -> None:
        self.interrupted.append((job_id, reason))

    def next_deadline(self) -> float | None:
        return None

    def enforce_timeouts(self, now: float) -> None:
        return None

    def shutdown(self) -> None:
        return None


def started(ledger: SlotLedger, attempt: int, executor: Interrupts) -> None:
    """j0's attempt ``attempt`` claimed by this worker and handed to ``executor``."""
    _, held = ledger.begin_turn(0)
    ledger.claimed([job(0, attempt)], 0.0, held)
    ledger.running["j0"].executor = executor


@pytest.fixture
def completions() -> Iterator[Completions]:
    inbox = Completions()
    yield inbox
    inbox.close()


def keeper_of(ledger: SlotLedger, completions: Completions) -> Leases:
    events = WorkerEvents(ev.EventBus(), ManualClock(0.0), "w1")
    return Leases(threading.Lock(), ledger, completions, events, lambda: None)


def test_a_lost_lease_of_an_earlier_attempt_leaves_the_new_attempt_running(
    completions: Completions,
) -> None:
    ledger = SlotLedger(concurrency=1)
    keeper = keeper_of(ledger, completions)
    executor = Interrupts()
    # the heartbeat named attempt 1; before its answer came, that lease was reaped and this
    # same worker claimed the job again (attempt 2), which the answer does not concern
    started(ledger, 2, executor)
    keeper.on_heartbeat(HeartbeatResult(lost=frozenset({"j0"})), [Lease("j0", 1)], 5.0)
    assert executor.interrupted == [], "the new attempt runs on"
    assert not ledger.running["j0"].lost
    assert ledger.leases() == [Lease("j0", 2)], "its lease is still renewed"
    keeper.on_heartbeat(HeartbeatResult(cancel=frozenset({"j0"})), [Lease("j0", 1)], 6.0)
    assert executor.interrupted == [], "a cancel answered for attempt 1 spares attempt 2"


def test_a_lost_lease_of_the_running_attempt_stops_it(completions: Completions) -> None:
    ledger = SlotLedger(concurrency=1)
    keeper = keeper_of(ledger, completions)
    executor = Interrupts()
    started(ledger, 2, executor)
    keeper.on_heartbeat(HeartbeatResult(lost=frozenset({"j0"})), [Lease("j0", 2)], 5.0)
    assert executor.interrupted == [("j0", "cancelled")]
    assert ledger.running["j0"].lost
    assert ledger.leases() == [], "a lost lease is no longer renewed"


def test_a_lease_that_ran_out_here_stops_its_attempt(completions: Completions) -> None:
    ledger = SlotLedger(concurrency=1)
    keeper = keeper_of(ledger, completions)
    executor = Interrupts()
    started(ledger, 1, executor)
    keeper.ran_out(["j0"])
    assert executor.interrupted == [("j0", "cancelled")]
    assert ledger.running["j0"].expired and ledger.running["j0"].lost


def test_a_lost_lease_of_a_prefetched_job_reports_it_cancelled_without_starting_it(
    completions: Completions,
) -> None:
    ledger = SlotLedger(concurrency=1, prefetch=1)
    keeper = keeper_of(ledger, completions)
    _, held = ledger.begin_turn(0)
    ledger.claimed([job(0), job(1)], 0.0, held)  # j1 waits for the slot j0 holds
    keeper.on_heartbeat(HeartbeatResult(lost=frozenset({"j1"})), [Lease("j1", 1)], 1.0)
    results = completions.take_all()
    assert [(r.job.id, r.cancelled) for r in results] == [("j1", True)]
    assert ledger.slot_freed("j0") == [], "j1 never starts"
