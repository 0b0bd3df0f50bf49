"""The default prefetch (``prefetch="auto"``, worker/adaptive.py) at work, on the memory broker:
it prefetches a stream of no-op jobs, never holds a long job's successor or a pooled job
while another worker is idle, and a stop gives the prefetched jobs back unconsumed."""

from __future__ import annotations

import threading
import time
from typing import Any

from tests.worker_threads import run

import faena
from faena.brokers.memory import MemoryBroker
from faena.core import events as ev
from faena.core.pools import DEFAULT_POOL
from faena.core.states import JobState
from faena.errors import BrokerError


def wait_for(predicate: Any, what: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.005)


def done(app: faena.App) -> int:
    counts = app.broker.count_by_state()
    return sum(n for (_q, state), n in counts.items() if state is JobState.SUCCEEDED)


def stopped_fields(app: faena.App) -> list[dict[str, Any]]:
    seen: list[dict[str, Any]] = []
    app.events.subscribe(ev.WORKER_STOPPED, lambda e: seen.append(dict(e.fields)))
    return seen


def test_the_default_worker_prefetches_a_stream_of_no_op_jobs(stop: list) -> None:
    app = faena.App(broker=MemoryBroker())
    noop = app.task(name="noop")(lambda: None)
    stopped = stopped_fields(app)
    app.enqueue_many("noop", [((), {})] * 2000)
    w, t = run(app, concurrency=2)
    stop.append((w, t))
    assert w.prefetch == "auto"
    wait_for(lambda: done(app) == 2000, "the stream drained")
    w.stop()
    t.join(10)
    assert noop is not None and not t.is_alive()
    (fields,) = stopped
    assert fields["prefetch"] == "auto"
    assert fields["prefetched_most"] > 0, "no-op jobs were claimed ahead of the free slots"
    assert fields["prefetch_let_go"]["pool"] == 0, "no pooled job in the stream"


def test_a_default_pool_sized_only_in_the_store_is_not_prefetched(stop: list) -> None:
    """``faena pools set default_pool 3`` (the store's, not the app's): its jobs may all
    share a small pool, so the worker never holds one prefetched (its slot would wait)."""
    app = faena.App(broker=MemoryBroker())
    app.broker.set_pools({DEFAULT_POOL: 100})
    app.task(name="noop")(lambda: None)
    stopped = stopped_fields(app)
    app.enqueue_many("noop", [((), {})] * 500)
    w, t = run(app, concurrency=2)
    stop.append((w, t))
    wait_for(lambda: done(app) == 500, "the stream drained")
    w.stop()
    t.join(10)
    (fields,) = stopped
    assert app.pools == {} and fields["prefetched_most"] == 0


def test_prefetch_0_claims_for_the_free_slots_only(stop: list) -> None:
    app = faena.App(broker=MemoryBroker())
    app.task(name="noop")(lambda: None)
    stopped = stopped_fields(app)
    app.enqueue_many("noop", [((), {})] * 500)
    w, t = run(app, concurrency=2, prefetch=0)
    stop.append((w, t))
    wait_for(lambda: done(app) == 500, "the stream drained")
    w.stop()
    t.join(10)
    assert stopped[0]["prefetch"] == 0 and stopped[0]["prefetched_most"] == 0


class Long:
    """A long job's body: it records that it started and blocks until opened."""

    def __init__(self) -> None:
        self.opened = threading.Event()
        self.started: list[tuple[int, str]] = []

    def __call__(self, i: int) -> int:
        self.started.append((i, threading.current_thread().name))
        assert self.opened.wait(20)
        return i


def test_a_long_job_is_not_held_behind_a_long_one_while_another_worker_is_idle() -> None:
    """Short jobs, then two long ones, two workers of one slot each: both long jobs run at
    once. A prefetch that held the second behind the first (in the worker running it) would
    keep it waiting until the first ends, which it does only once both started."""
    app = faena.App(broker=MemoryBroker())
    app.task(name="noop")(lambda: None)
    long = Long()
    app.task(name="long")(long)
    released: list[ev.Event] = []
    app.events.subscribe(ev.JOB_RELEASED, released.append)
    app.enqueue_many("noop", [((), {})] * 1000)
    app.enqueue_many("long", [((0,), {}), ((1,), {})])
    a, ta = run(app, concurrency=1)
    b, tb = run(app, concurrency=1)
    try:
        wait_for(lambda: len(long.started) == 2, "both long jobs running, one on each worker")
        # a slot starts its next prefetched job before its last outcome is reported (the
        # main thread reports): the short jobs' successes may reach the store just after
        wait_for(lambda: done(app) == 1000, "the short jobs' outcomes reported")
        assert all(e.fields.get("reason") in (None, "long_jobs") for e in released)
    finally:
        long.opened.set()
        for w, t in ((a, ta), (b, tb)):
            w.stop()
            t.join(10)
    assert done(app) == 1002


def test_a_pooled_job_is_never_held_prefetched_while_another_worker_is_idle() -> None:
    """A pool of one slot, two workers of one slot each, a stream of short jobs with pooled
    ones among them and a long job: every pooled job runs while the long one still runs,
    and a pooled job that came in a prefetch was given back at once (reason "pool")."""
    app = faena.App(broker=MemoryBroker(), pools={"one": 1})
    app.task(name="noop")(lambda: None)
    pooled_ran: list[int] = []
    app.task(name="pooled", pool="one")(lambda i: pooled_ran.append(i))
    long = Long()
    app.task(name="long")(long)
    released: list[ev.Event] = []
    app.events.subscribe(ev.JOB_RELEASED, released.append)
    app.enqueue_many("noop", [((), {})] * 1000)
    app.enqueue_many("long", [((0,), {})])  # the pooled jobs right behind it: in its prefetch
    app.enqueue_many("pooled", [((9,), {})])
    for i in range(5):
        app.enqueue_many("noop", [((), {})] * 50)
        app.enqueue_many("pooled", [((i,), {})])
    a, ta = run(app, concurrency=1)
    b, tb = run(app, concurrency=1)
    try:
        wait_for(lambda: sorted(pooled_ran) == [0, 1, 2, 3, 4, 9], "every pooled job ran")
        assert long.started and not long.opened.is_set(), "... while the long job runs"
        for e in released:
            if e.fields.get("task") == "pooled":
                assert e.fields.get("prefetched") is True and e.fields["reason"] == "pool"
    finally:
        long.opened.set()
        for w, t in ((a, ta), (b, tb)):
            w.stop()
            t.join(10)


def test_a_stop_gives_the_prefetched_jobs_back_with_no_attempt_consumed() -> None:
    app = faena.App(broker=MemoryBroker())
    count = [0]
    reached = threading.Event()

    def slowish() -> None:
        count[0] += 1
        if count[0] == 1500:
            reached.set()

    app.task(name="noop")(slowish)
    released: list[ev.Event] = []
    app.events.subscribe(ev.JOB_RELEASED, released.append)
    handles = app.enqueue_many("noop", [((), {})] * 5000)
    w, t = run(app, concurrency=2)
    assert reached.wait(20)
    w.stop()  # what SIGTERM does (tests/integration/test_shutdown_signals.py sends it)
    t.join(10)
    assert not t.is_alive()
    jobs = [h.refresh() for h in handles]
    left = [j for j in jobs if j.state is not JobState.SUCCEEDED]
    assert left, "the stop came before the stream drained"
    for j in left:
        assert j.state is JobState.QUEUED and j.tries == 0, "no attempt consumed"
    assert all(e.fields.get("prefetched") is True for e in released)
    assert all(j.state in (JobState.SUCCEEDED, JobState.QUEUED) for j in jobs)


class ReleaseFailsOnce(MemoryBroker):
    def __init__(self) -> None:
        super().__init__()
        self.failures = 1

    def release(self, leases: Any) -> list[bool]:
        if self.failures:
            self.failures -= 1
            raise BrokerError("release refused (test)")
        return super().release(leases)


def test_a_pooled_job_whose_release_fails_waits_and_runs_here() -> None:
    """The broker refuses the release of a pooled job that came in a prefetch: the job waits
    for a slot of this worker again (it is not lost), and runs; later releases work."""
    broker = ReleaseFailsOnce()
    app = faena.App(broker=broker, pools={"one": 1})
    app.task(name="noop")(lambda: None)
    pooled_ran: list[int] = []
    app.task(name="pooled", pool="one")(lambda i: pooled_ran.append(i))
    long = Long()
    app.task(name="long")(long)
    app.enqueue_many("noop", [((), {})] * 1000)
    app.enqueue_many("long", [((0,), {})])  # its slot busy: the pooled job comes in a prefetch
    for i in range(5):
        app.enqueue_many("pooled", [((i,), {})])
        app.enqueue_many("noop", [((), {})] * 50)
    w, t = run(app, concurrency=1)
    try:
        wait_for(lambda: broker.failures == 0, "the release of the prefetched pooled job refused")
        long.opened.set()
        wait_for(lambda: sorted(pooled_ran) == [0, 1, 2, 3, 4], "every pooled job ran")
        wait_for(lambda: done(app) == 1256, "every job ran")
    finally:
        long.opened.set()
        w.stop()
        t.join(10)
