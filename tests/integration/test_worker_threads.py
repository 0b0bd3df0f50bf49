"""The worker runtime in one process, on the memory broker."""

from __future__ import annotations

import select
import threading
import time
from typing import Any

import pytest
from tests.worker_threads import run

import faena
from faena.brokers.memory import MemoryBroker
from faena.core.states import JobState
from faena.errors import BrokerError
from faena.worker import Worker


class FlakyBroker(MemoryBroker):
    """Fails the first ``failures`` exchanges, as a restarting server would."""

    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures = failures

    def finish_and_claim(self, *args: Any, **kwargs: Any) -> Any:
        if self.failures > 0:
            self.failures -= 1
            raise BrokerError("connection refused (test)")
        return super().finish_and_claim(*args, **kwargs)


def _wait_for(predicate: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


@pytest.fixture
def app() -> faena.App:
    return faena.App(broker=MemoryBroker(), pools={"tiny": 1})


def test_success_retry_dead_and_unknown_task(app: faena.App, stop: list) -> None:
    calls = {"flaky": 0}

    @app.task(retries=2, backoff_base=0.01)
    def flaky() -> str:
        calls["flaky"] += 1
        if calls["flaky"] < 2:
            raise ConnectionError("reset")
        return "ok"

    @app.task(retries=1, backoff_base=0.01)
    def broken() -> None:
        raise ValueError("bad row")

    @app.task(retries=3, retry_on=KeyError)
    def picky() -> None:
        raise ValueError("not retried")

    stop.append(run(app, concurrency=2))
    assert flaky.enqueue().wait(timeout=10) == "ok"
    with pytest.raises(faena.JobFailedError, match="ValueError: bad row"):
        broken.enqueue().wait(timeout=10)
    h = picky.enqueue()
    with pytest.raises(faena.JobFailedError):
        h.wait(timeout=10)
    assert h.refresh().tries == 1, "an exception outside retry_on is not retried"
    ghost = app.enqueue("no.such.task")
    with pytest.raises(faena.JobFailedError, match="UnknownTaskError"):
        ghost.wait(timeout=10)
    assert "@app.task(name='no.such.task')" in (ghost.refresh().error.message or "")


def test_thread_timeout_is_cooperative_but_real(
    app: faena.App, stop: list, monkeypatch: pytest.MonkeyPatch
) -> None:
    from faena.worker import runtime

    # the safety-net wake-up is pushed out of reach: the job's deadline alone must wake the
    # dispatcher, although it claimed the job before a slot thread picked it up
    monkeypatch.setattr(runtime, "IDLE_POLL_SECONDS", 120.0)

    @app.task(timeout=0.3, retries=0)
    def spin() -> None:
        while True:
            pass

    stop.append(run(app, concurrency=1))
    h = spin.enqueue()
    with pytest.raises(faena.JobFailedError, match="TimeoutError"):
        h.wait(timeout=10)


def test_async_tasks_and_current_job(app: faena.App, stop: list) -> None:
    import asyncio

    @app.task
    async def double(x: int) -> dict[str, Any]:
        await asyncio.sleep(0.01)
        job = faena.current_job()
        return {"value": 2 * x, "attempt": job.attempt if job else None}

    stop.append(run(app, concurrency=4))
    assert double.enqueue(21).wait(timeout=10) == {"value": 42, "attempt": 1}


def test_cancel_a_running_job(app: faena.App, stop: list) -> None:
    app.lease_seconds = 0.6  # heartbeats every 0.2 s carry the cancel request

    @app.task
    def long() -> None:
        for _ in range(1000):
            time.sleep(0.01)

    stop.append(run(app, concurrency=1))
    h = long.enqueue()
    while h.refresh().state is not JobState.RUNNING:
        time.sleep(0.01)
    app.cancel(h.id)
    with pytest.raises(faena.JobFailedError, match="cancelled"):
        h.wait(timeout=10)


def test_a_job_interrupted_before_its_slot_takes_it_never_runs() -> None:
    """A cancel (or timeout) that comes while the job still waits for a free slot thread
    stops it: it ends cancelled without running."""
    from faena.worker.executors import ThreadExecutor
    from faena.worker.results import Completions

    app = faena.App(broker=MemoryBroker())
    release = threading.Event()
    ran: list[str] = []

    @app.task
    def hold(tag: str) -> None:
        ran.append(tag)
        assert release.wait(10)

    completions = Completions()
    executor = ThreadExecutor(1, completions)
    try:
        hold.enqueue_with(["a"], priority=9)
        hold.enqueue_with(["b"], priority=1)
        first, second = app.broker.claim("w", [hold.options.queue], 2, 30.0).jobs
        executor.submit(first, hold)
        executor.submit(second, hold)  # waits: the one slot runs "a"
        executor.interrupt(second.id, "cancelled")
        release.set()
        results: list[Any] = []
        deadline = time.monotonic() + 10
        while len(results) < 2 and time.monotonic() < deadline:
            results += completions.take_all()
            time.sleep(0.01)
    finally:
        executor.shutdown()
        completions.close()
    assert ran == ["a"]
    assert [(r.job.id, r.cancelled) for r in results] == [(first.id, False), (second.id, True)]


def test_worker_rides_out_a_broker_outage() -> None:
    app = faena.App(broker=FlakyBroker(failures=3))

    @app.task
    def add(a: int, b: int) -> int:
        return a + b

    handles = [add.enqueue(i, i) for i in range(5)]
    w, t = run(app, concurrency=2)
    try:
        assert [h.wait(timeout=20) for h in handles] == [0, 2, 4, 6, 8]
    finally:
        w.stop()
        t.join(10)


def test_stop_releases_running_jobs_after_the_grace(app: faena.App) -> None:
    started = threading.Event()

    @app.task
    def slow() -> None:
        started.set()
        time.sleep(5)

    h = slow.enqueue()
    w, t = run(app, concurrency=1, grace=0.2)
    assert started.wait(10)
    w.stop()
    t.join(10)
    job = h.refresh()
    assert job.state is JobState.QUEUED and job.tries == 0


def test_pool_limits_in_one_process(app: faena.App, stop: list) -> None:
    running = 0
    peak = 0
    lock = threading.Lock()

    @app.task(pool="tiny")
    def pooled() -> None:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        time.sleep(0.02)
        with lock:
            running -= 1

    handles = [pooled.enqueue() for _ in range(8)]
    stop.append(run(app, concurrency=4))
    for h in handles:
        h.wait(timeout=20)
    assert peak == 1


def _readable(inbox: Any) -> bool:
    return bool(select.select([inbox], [], [], 0)[0])


def test_completions_wake_the_dispatcher_only_while_it_sleeps() -> None:
    from faena.core import lifecycle
    from faena.core.job import NewJob
    from faena.worker.results import Completions, RunResult

    job = lifecycle.create(NewJob(task="t", queue="q", id="j"), 0.0)
    inbox = Completions()
    inbox.put(RunResult(job, 0.0))  # the dispatcher is busy: no wake-up is written
    assert not _readable(inbox)
    assert not inbox.arm()  # a result is waiting: do not sleep
    assert [r.job.id for r in inbox.take_all()] == ["j"]

    assert inbox.arm()  # nothing waiting: the dispatcher sleeps
    threading.Thread(target=inbox.put, args=(RunResult(job, 0.0),)).start()
    assert select.select([inbox], [], [], 5.0)[0] == [inbox]
    inbox.disarm(True)
    assert not _readable(inbox)  # the wake-up was consumed
    assert len(inbox.take_all()) == 1
    inbox.poke()  # a stop request wakes it whatever the state
    assert _readable(inbox)
    inbox.close()


class ThreadRecordingBroker(MemoryBroker):
    """Records which thread made each exchange, and the most jobs it ever saw running; calls
    from several threads may overlap (a round trip is simulated) as on PostgreSQL or Redis."""

    parallel_calls = True

    def __init__(self, fail_on_slot_thread: int = 0) -> None:
        super().__init__()
        self.callers: list[str] = []
        self.peak_running = 0
        self.fail_on_slot_thread = fail_on_slot_thread

    def finish_and_claim(self, *args: Any, **kwargs: Any) -> Any:
        name = threading.current_thread().name
        self.callers.append(name)
        if self.fail_on_slot_thread > 0 and name.startswith("faena-job-"):
            self.fail_on_slot_thread -= 1
            raise BrokerError("connection reset (test)")
        time.sleep(0.002)  # a network round trip: turns on several threads overlap
        result = super().finish_and_claim(*args, **kwargs)
        running = sum(
            n for (_q, state), n in self.count_by_state().items() if state is JobState.RUNNING
        )
        self.peak_running = max(self.peak_running, running)
        return result


def _quick_jobs(app: faena.App, n: int, step: float = 0.0) -> list[Any]:
    @app.task
    def quick(i: int) -> int:
        time.sleep(step * (i % 3))  # uneven: the slots' turns fall out of step
        return i

    return [quick.enqueue(i) for i in range(n)]


def test_a_slot_whose_job_ends_claims_its_next_job_itself(
    stop: list, monkeypatch: pytest.MonkeyPatch
) -> None:
    from faena.worker import runtime

    # the main thread's safety-net wake-up is pushed out of reach: the slots' own turns must
    # keep every slot busy (a turn that leaves its slot unclaimed would stall the drain)
    monkeypatch.setattr(runtime, "IDLE_POLL_SECONDS", 120.0)
    broker = ThreadRecordingBroker()
    app = faena.App(broker=broker)
    handles = _quick_jobs(app, 60)
    stop.append(run(app, concurrency=2, prefetch=0))  # the slots' own turns, not a prefetch
    assert [h.wait(timeout=20) for h in handles] == list(range(60))
    # the executor threads called the broker themselves, and the turns they took at the same
    # time never claimed more jobs than the worker has slots
    assert any(name.startswith("faena-job-") for name in broker.callers)
    assert broker.peak_running <= 2


def test_a_slot_stays_taken_until_its_job_is_reported(
    stop: list, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A job that has ended but is not yet reported still holds its lease: another slot's
    turn must not claim for its slot meanwhile, or the broker sees more jobs running for this
    worker than it has slots. Deciding the outcome is made slow here to hold that gap open."""
    from faena.core import outcomes
    from faena.worker import runtime

    decide = outcomes.decide

    def slow_decide(*args: Any, **kwargs: Any) -> Any:
        time.sleep(0.003)
        return decide(*args, **kwargs)

    monkeypatch.setattr(outcomes, "decide", slow_decide)
    monkeypatch.setattr(runtime, "IDLE_POLL_SECONDS", 120.0)  # no stall either
    broker = ThreadRecordingBroker()
    app = faena.App(broker=broker)
    handles = _quick_jobs(app, 80)
    stop.append(run(app, concurrency=2, prefetch=0))  # the slots' own turns, not a prefetch
    assert [h.wait(timeout=20) for h in handles] == list(range(80))
    assert broker.peak_running <= 2


def test_a_job_that_ends_while_the_turn_that_claimed_it_still_logs_gets_a_successor(
    stop: list, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Once the broker has answered, a turn's slots belong to the jobs it claimed: a job that
    starts and ends while that turn still logs must claim its successor (or the slot would
    stay empty until the main thread's safety-net wake-up)."""
    from faena.worker import runtime

    start = runtime.Worker._start

    def slow_start(self: Worker, job: Any) -> None:
        start(self, job)
        time.sleep(0.003)  # the turn goes on (logging) while the job it started runs

    monkeypatch.setattr(runtime.Worker, "_start", slow_start)
    monkeypatch.setattr(runtime, "IDLE_POLL_SECONDS", 120.0)
    broker = ThreadRecordingBroker()
    app = faena.App(broker=broker)
    handles = _quick_jobs(app, 100, step=0.003)
    stop.append(run(app, concurrency=2, prefetch=0))
    assert [h.wait(timeout=20) for h in handles] == list(range(100))
    assert broker.peak_running <= 2


def test_a_slot_turn_that_meets_a_broker_error_keeps_its_results(stop: list) -> None:
    broker = ThreadRecordingBroker(fail_on_slot_thread=2)
    app = faena.App(broker=broker)
    told: list[tuple[str, dict[str, Any]]] = []
    for name in ("worker.broker_unavailable", "worker.broker_recovered", "worker.error"):
        app.events.subscribe(name, lambda e: told.append((e.name, dict(e.fields))))
    handles = _quick_jobs(app, 20)
    stop.append(run(app, concurrency=2))
    assert [h.wait(timeout=20) for h in handles] == list(range(20))
    assert all(h.refresh().tries == 1 for h in handles)  # nothing ran twice
    assert broker.fail_on_slot_thread == 0
    # each outage (both failures in one, or one each) is told once when it begins and once
    # when the broker answers again, never a line per failed call
    recovered = [f for n, f in told if n == "worker.broker_recovered"]
    _wait_for(lambda: sum(f["failed_calls"] for f in recovered) == 2)
    names = [n for n, _ in told]
    assert names in (
        ["worker.broker_unavailable", "worker.broker_recovered"],
        ["worker.broker_unavailable", "worker.broker_recovered"] * 2,
    )
    assert "connection reset (test)" in told[0][1]["error_message"]
    assert told[0][1]["status"] == "broker_unavailable"


def test_a_slot_turns_log_line_is_written_while_the_slots_stay_busy(
    stop: list, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Slots leave their lines in the output buffer; the sleeping main thread writes them out
    while the slots run, so a line does not wait for the next job to end (nor for the main
    thread's safety-net wake-up, pushed out of reach here)."""
    import os

    from faena.observability import logs
    from faena.worker import runtime

    monkeypatch.setattr(runtime, "IDLE_POLL_SECONDS", 120.0)
    release = threading.Event()
    read_fd, write_fd = os.pipe()
    # a pipe: block-buffered, like a container's standard output
    out = open(write_fd, "w", buffering=8192)  # noqa: SIM115 - closed in the finally
    logs.configure(fmt="json", level="INFO", stream=out)
    try:
        app = faena.App(broker=ThreadRecordingBroker())

        @app.task
        def hold(tag: str) -> str:
            assert release.wait(30)
            return tag

        @app.task
        def quick() -> None:
            return None

        held = [hold.enqueue_with(["a"], priority=9), hold.enqueue_with(["b"], priority=1)]
        done = quick.enqueue_with(priority=5)  # runs beside "a"; its slot then takes "b"
        stop.append(run(app, concurrency=2))
        done.wait(timeout=20)
        seen = ""
        while f'"job_id": "{done.id}"' not in seen or "job.succeeded" not in seen:
            ready, _, _ = select.select([read_fd], [], [], 20)
            assert ready, "the finished job's line stayed in the buffer while slots were busy"
            seen += os.read(read_fd, 65536).decode()
        assert held[1].refresh().state is JobState.RUNNING  # both slots still busy
        release.set()
        assert [h.wait(timeout=20) for h in held] == ["a", "b"]
    finally:
        release.set()
        for w, t in stop:  # before the pipe closes: a worker still running flushes into it
            w.stop(graceful=False)
            t.join(10)
        logs.configure(fmt="json", level="INFO")
        out.close()
        os.close(read_fd)


def test_a_signal_inside_the_signal_handler_never_deadlocks(app: faena.App) -> None:
    """A second SIGTERM can run its handler inside the first one's: the nested handler must
    not wait on a lock that the one it interrupted holds (threading.Event.set did), and the
    second signal still means "release at once" (grace 0)."""
    from tests.nested_signals import handle_with_signals_inside

    w = Worker(app, install_signals=False, grace=30)
    try:
        handle_with_signals_inside(w._signal)
    finally:
        w.close()  # never run: its results inbox is closed here
    assert w.grace == 0.0, "a second signal releases at once"
