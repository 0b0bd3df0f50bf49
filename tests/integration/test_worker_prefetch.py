"""A worker that claims jobs ahead of its free slots (``prefetch``), on the memory broker."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from tests.worker_threads import run

import faena
from faena.brokers.memory import MemoryBroker
from faena.brokers.protocol import HeartbeatResult
from faena.core import events as ev
from faena.core.job import Lease
from faena.core.states import JobState
from faena.errors import BrokerError


def wait_for(predicate: Any, what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.005)


def held(app: faena.App) -> int:
    """Jobs the broker sees as running: started, prefetched or not yet reported."""
    counts = app.broker.count_by_state()
    return sum(n for (_q, state), n in counts.items() if state is JobState.RUNNING)


class Gate:
    """A task body that records who runs and blocks until opened."""

    def __init__(self) -> None:
        self.opened = threading.Event()
        self.lock = threading.Lock()
        self.ran: list[int] = []
        self.now = 0
        self.peak = 0

    def __call__(self, i: int) -> int:
        with self.lock:
            self.ran.append(i)
            self.now += 1
            self.peak = max(self.peak, self.now)
        try:
            assert self.opened.wait(10)
        finally:
            with self.lock:
                self.now -= 1
        return i


def test_the_worker_holds_slots_plus_prefetch_and_runs_no_more_than_its_slots(
    stop: list,
) -> None:
    app = faena.App(broker=MemoryBroker())
    gate = Gate()
    task = app.task(name="gated")(gate)
    handles = [task.enqueue(i) for i in range(10)]
    w, t = run(app, concurrency=2, prefetch=3)
    stop.append((w, t))
    wait_for(lambda: len(gate.ran) == 2 and held(app) == 5, "2 jobs running and 3 prefetched")
    assert w.jobs_running == 2, "prefetched jobs wait: they are not running"
    time.sleep(0.2)  # nothing more is claimed or started while the slots stay busy
    assert (len(gate.ran), held(app)) == (2, 5)
    gate.opened.set()
    assert [h.wait(timeout=10) for h in handles] == list(range(10))
    assert gate.peak == 2
    assert sorted(gate.ran) == list(range(10)), "each job ran once"


def test_a_drain_with_prefetch_reports_from_the_main_thread_only(
    stop: list, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Slots start prefetched jobs themselves and never call the broker; the dispatcher's
    turns report and top the prefetch up. The safety-net wake-up is out of reach: a slot
    whose job ends must get its successor without it."""
    from faena.worker import runtime

    monkeypatch.setattr(runtime, "IDLE_POLL_SECONDS", 120.0)
    callers: list[str] = []

    class Recording(MemoryBroker):
        parallel_calls = True

        def finish_and_claim(self, *args: Any, **kwargs: Any) -> Any:
            callers.append(threading.current_thread().name)
            time.sleep(0.001)
            return super().finish_and_claim(*args, **kwargs)

    app = faena.App(broker=Recording())

    @app.task
    def quick(i: int) -> int:
        time.sleep(0.001 * (i % 3))
        return i

    handles = [quick.enqueue(i) for i in range(300)]
    stop.append(run(app, concurrency=2, prefetch=4))
    assert [h.wait(timeout=30) for h in handles] == list(range(300))
    assert callers and not [c for c in callers if c.startswith("faena-job-")]


class ReleaseFails(MemoryBroker):
    """Fails its first ``failures`` releases, as a broker that restarts meanwhile would."""

    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures = failures

    def release(self, leases: Any) -> list[bool]:
        if self.failures:
            self.failures -= 1
            raise BrokerError("connection reset (test)")
        return super().release(leases)


@pytest.mark.parametrize("release_failures", [0, 1], ids=["release-ok", "release-fails-once"])
def test_stop_releases_prefetched_jobs_at_once_and_lets_running_ones_finish(
    release_failures: int,
) -> None:
    """A release that fails is tried again while the worker drains; what was reported before
    it is not reported again (it would come back as lease_lost)."""
    broker = ReleaseFails(release_failures)
    app = faena.App(broker=broker)
    gate = Gate()
    task = app.task(name="gated")(gate)
    released: list[ev.Event] = []
    lost: list[ev.Event] = []
    app.events.subscribe(ev.JOB_RELEASED, released.append)
    app.events.subscribe(ev.JOB_LEASE_LOST, lost.append)
    first, *rest = [task.enqueue(i) for i in range(4)]
    w, t = run(app, concurrency=1, prefetch=2, grace=30)
    wait_for(lambda: gate.ran == [0] and held(app) == 3, "1 job running and 2 prefetched")
    w.stop()
    wait_for(lambda: held(app) == 1, "the prefetched jobs released while the running one runs")
    for h in rest:
        job = h.refresh()
        assert job.state is JobState.QUEUED and job.tries == 0, "no attempt consumed"
    assert t.is_alive(), "the running job still has its grace"
    gate.opened.set()
    t.join(10)
    assert not t.is_alive()
    assert first.refresh().state is JobState.SUCCEEDED
    assert gate.ran == [0], "a prefetched job never starts once the worker stops"
    assert sorted(e.fields["job_id"] for e in released) == sorted(h.id for h in rest[:2])
    assert all(e.fields.get("prefetched") is True for e in released)
    assert not lost and broker.failures == 0


def test_a_prefetched_job_that_is_cancelled_never_runs(stop: list) -> None:
    app = faena.App(broker=MemoryBroker(), lease_seconds=0.6)  # heartbeats every 0.2 s
    gate = Gate()
    task = app.task(name="gated")(gate)
    first, second = task.enqueue(0), task.enqueue(1)
    w, t = run(app, concurrency=1, prefetch=1)
    stop.append((w, t))
    wait_for(lambda: gate.ran == [0] and held(app) == 2, "one running, one prefetched")
    app.cancel(second.id)
    wait_for(lambda: second.refresh().state is JobState.CANCELLED, "the cancel to land")
    gate.opened.set()
    assert first.wait(timeout=10) == 0
    assert gate.ran == [0]


def test_a_prefetched_job_whose_lease_is_lost_never_runs_on_that_attempt(stop: list) -> None:
    """The broker took a prefetched job back (here: released behind the worker's back, as a
    reaper would after a long pause): the worker drops it unstarted, and logs lease_lost."""

    class TakesOneBack(MemoryBroker):
        victim: str | None = None

        def heartbeat(self, worker: str, leases: Any, lease_seconds: float) -> HeartbeatResult:
            for lease in leases:
                if lease.job_id == self.victim:
                    self.victim = None
                    self.release([Lease(lease.job_id, lease.attempt)])
            return super().heartbeat(worker, leases, lease_seconds)

    broker = TakesOneBack()
    app = faena.App(broker=broker, lease_seconds=0.6)
    gate = Gate()
    task = app.task(name="gated")(gate)
    lost: list[ev.Event] = []
    app.events.subscribe(ev.JOB_LEASE_LOST, lost.append)
    first, second = task.enqueue(0), task.enqueue(1)
    w, t = run(app, concurrency=1, prefetch=1)
    stop.append((w, t))
    wait_for(lambda: gate.ran == [0] and held(app) == 2, "one running, one prefetched")
    broker.victim = second.id
    wait_for(lambda: lost, "the lost lease to be noticed")
    assert lost[0].fields["job_id"] == second.id and lost[0].fields["attempt"] == 1
    assert gate.ran == [0], "the lost attempt never ran"
    gate.opened.set()
    assert [first.wait(timeout=10), second.wait(timeout=10)] == [0, 1]
    assert second.refresh().attempt == 2, "it ran on a later claim"


def test_a_prefetched_jobs_timeout_counts_from_its_start(stop: list) -> None:
    app = faena.App(broker=MemoryBroker())

    @app.task
    def slow() -> None:
        time.sleep(0.6)

    @app.task(timeout=0.4)
    def brief() -> str:
        time.sleep(0.05)
        return "in time"

    slow.enqueue()
    h = brief.enqueue()  # prefetched behind ``slow``: 0.6 s in the buffer, then 0.05 s of work
    stop.append(run(app, concurrency=1, prefetch=1))
    assert h.wait(timeout=10) == "in time"


def test_async_jobs_prefetched_start_as_slots_free(stop: list) -> None:
    """Coroutines end on the event loop's thread, not a slot's: the main thread hands the
    prefetched ones over as the running ones end, never more than the slots at once."""
    import asyncio

    app = faena.App(broker=MemoryBroker())
    now = peak = 0

    @app.task
    async def nap(i: int) -> int:
        nonlocal now, peak
        now += 1
        peak = max(peak, now)
        await asyncio.sleep(0.01)
        now -= 1
        return i

    handles = [nap.enqueue(i) for i in range(30)]
    stop.append(run(app, concurrency=2, prefetch=4))
    assert [h.wait(timeout=20) for h in handles] == list(range(30))
    assert peak == 2
