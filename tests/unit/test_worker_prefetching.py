"""worker/prefetching.Prefetching.report_may_wait: when a slot that started a prefetched job
leaves its report for a later turn (so one turn reports several jobs)."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import replace

from tests.unit.test_worker_ledger import job

from faena.brokers.memory import MemoryBroker
from faena.core.clock import ManualClock
from faena.core.events import EventBus
from faena.core.job import Job
from faena.core.pools import DEFAULT_POOL
from faena.worker.adaptive import WARMUP, AdaptivePrefetch
from faena.worker.events import WorkerEvents
from faena.worker.ledger import SlotLedger
from faena.worker.outage import Outage
from faena.worker.prefetching import Prefetching
from faena.worker.results import RunResult

RTT = 0.0004


def prefetching(
    waiting: int, pools: Mapping[str, int] | None = None, adaptive: bool = True
) -> tuple[Prefetching, SlotLedger]:
    """A worker of 2 slots running 2 jobs, ``waiting`` more prefetched; no-op jobs measured
    (4 of them run in one round trip a slot: the refill is due at 8 waiting)."""
    auto = AdaptivePrefetch(2) if adaptive else None
    if auto is not None:
        auto.round_trip(RTT)
        for _ in range(WARMUP):
            auto.ran(RTT / 4)
    ledger = SlotLedger(2, 0)
    ledger.capacity = 2 + waiting
    _, held = ledger.begin_turn(0)
    ledger.claimed([job(n) for n in range(2 + waiting)], 0.0, held)
    events = WorkerEvents(EventBus(), ManualClock(), "w")
    p = Prefetching(
        auto, 2, ledger, threading.Lock(), events, Outage(events, flush=lambda: None),
        source=MemoryBroker, pools=lambda: pools or {}, start=lambda j: None,
    )  # fmt: skip
    return p, ledger


def ended(j: Job, seconds: float = RTT / 4) -> RunResult:
    return RunResult(replace(j, pool=DEFAULT_POOL), seconds, result_json="null")


def test_a_report_waits_while_the_prefetch_outlasts_a_round_trip() -> None:
    p, ledger = prefetching(waiting=9)
    assert p.report_may_wait(ended(job(0)))
    ledger.ready.popleft()  # 8 left: the slots run them within one round trip
    assert not p.report_may_wait(ended(job(0)))


def test_a_report_never_waits_for_a_long_job_a_pool_or_a_stop() -> None:
    p, ledger = prefetching(waiting=9)
    assert not p.report_may_wait(ended(job(0), seconds=1.0)), "the prefetch must hear of it"
    assert not prefetching(9, pools={DEFAULT_POOL: 3})[0].report_may_wait(ended(job(0)))
    assert not p.report_may_wait(RunResult(job(0), RTT / 4)), "a job of a pool of its own"
    ledger.stopping = True
    assert not p.report_may_wait(ended(job(0)))


def test_a_report_never_waits_when_the_job_started_in_its_slot_has_a_timeout() -> None:
    p, _ = prefetching(waiting=9)
    assert p.report_may_wait(ended(job(0)), [job(2)])
    assert not p.report_may_wait(ended(job(0)), [replace(job(2), timeout=5.0)])


def test_a_fixed_prefetch_reports_at_once() -> None:
    p, _ = prefetching(waiting=9, adaptive=False)
    assert not p.report_may_wait(ended(job(0)))
