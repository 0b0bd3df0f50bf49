"""Middleware chains, pure: order, refusal, and what a hook that raises does (no I/O)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import Any, TypeVar

import pytest
from examples.middleware import ClaimRateLimit, Timing

import faena
from faena.core import events as ev
from faena.core.clock import ManualClock
from faena.core.job import Job, Outcome
from faena.core.middleware import Attempt, Chain, HookFailure, Middleware, WorkerInfo
from faena.core.states import JobState
from faena.errors import MiddlewareError
from faena.observability.metrics import JobMetrics, new_registry
from faena.worker.events import WorkerEvents
from faena.worker.hooks import worker_chain
from faena.worker.results import RunResult

T = TypeVar("T")


def job(job_id: str = "j1") -> Job:
    return Job(
        id=job_id,
        task="etl.load",
        queue="etl",
        args_json="[]",
        kwargs_json="{}",
        state=JobState.RUNNING,
        priority=0,
        pool="etl_pool",
        pool_slots=1,
        attempt=1,
        tries=1,
        max_attempts=3,
        timeout=None,
        idempotency_key=None,
        enqueued_at=0.0,
        run_at=0.0,
    )


def finish(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine that never waits on anything (no event loop: no sockets)."""
    try:
        coro.send(None)
    except StopIteration as stop:
        return stop.value  # type: ignore[no-any-return]
    raise AssertionError("the coroutine waited")


class Recorder(Middleware):
    def __init__(self, label: str, calls: list[str], grant: int | None = None) -> None:
        self.label = label
        self.calls = calls
        self.grant = grant

    @property
    def name(self) -> str:
        return self.label

    def on_worker_start(self, worker: WorkerInfo) -> None:
        self.calls.append(f"{self.label}.start")

    def on_worker_stop(self, worker: WorkerInfo) -> None:
        self.calls.append(f"{self.label}.stop")

    def before_claim(self, queues: Sequence[str], limit: int) -> int:
        self.calls.append(f"{self.label}.before_claim({limit})")
        return limit if self.grant is None else self.grant

    def after_claim(self, jobs: Sequence[Job]) -> None:
        self.calls.append(f"{self.label}.after_claim({len(jobs)})")

    def before_execute(self, job: Job) -> None:
        self.calls.append(f"{self.label}.before")

    def around_execute(self, job: Job, call: Callable[[], T]) -> T:
        self.calls.append(f"{self.label}.enter")
        try:
            return call()
        finally:
            self.calls.append(f"{self.label}.exit")

    async def around_execute_async(self, job: Job, call: Callable[[], Awaitable[T]]) -> T:
        self.calls.append(f"{self.label}.aenter")
        try:
            return await call()
        finally:
            self.calls.append(f"{self.label}.aexit")

    def after_execute(self, attempt: Attempt) -> None:
        self.calls.append(f"{self.label}.after")


INFO = WorkerInfo("w1", ("etl",), 4)


def test_the_first_registered_is_the_outermost() -> None:
    calls: list[str] = []
    chain = Chain([Recorder("a", calls), Recorder("b", calls)])
    chain.worker_started(INFO)
    assert chain.before_claim(["etl"], 4) == 4
    chain.after_claim([job()])
    chain.before_execute(job())
    assert chain.execute(job(), lambda: calls.append("call") or 42) == 42

    async def coro() -> int:
        calls.append("acall")
        return 7

    assert finish(chain.execute_async(job(), coro)) == 7
    chain.after_execute(Attempt(job(), Outcome("j1", 1, JobState.SUCCEEDED), 0.5))
    chain.worker_stopped(INFO)
    assert calls == [
        "a.start", "b.start",
        "a.before_claim(4)", "b.before_claim(4)",
        "b.after_claim(1)", "a.after_claim(1)",
        "a.before", "b.before",
        "a.enter", "b.enter", "call", "b.exit", "a.exit",
        "a.aenter", "b.aenter", "acall", "b.aexit", "a.aexit",
        "b.after", "a.after",
        "b.stop", "a.stop",
    ]  # fmt: skip


def test_before_claim_can_only_lower_the_limit_and_zero_stops_asking() -> None:
    calls: list[str] = []
    chain = Chain([Recorder("a", calls, grant=9), Recorder("b", calls, grant=2)])
    assert chain.before_claim(["etl"], 4) == 2  # 9 is cut to 4, then b lowers it
    calls.clear()
    refusing = Chain([Recorder("a", calls, grant=0), Recorder("b", calls)])
    assert refusing.before_claim(["etl"], 4) == 0
    assert calls == ["a.before_claim(4)"]  # b is not asked


class Raising(Middleware):
    def __init__(self, where: str) -> None:
        self.where = where

    def _maybe(self, hook: str) -> None:
        if hook == self.where:
            raise RuntimeError(f"{hook} broke")

    def before_claim(self, queues: Sequence[str], limit: int) -> int:
        self._maybe("before_claim")
        return limit

    def after_claim(self, jobs: Sequence[Job]) -> None:
        self._maybe("after_claim")

    def before_execute(self, job: Job) -> None:
        self._maybe("before_execute")

    def after_execute(self, attempt: Attempt) -> None:
        self._maybe("after_execute")

    def on_worker_start(self, worker: WorkerInfo) -> None:
        self._maybe("on_worker_start")

    def around_execute(self, job: Job, call: Callable[[], T]) -> T:
        self._maybe("around_before")
        value = call()
        self._maybe("around_after")
        return value


def test_a_raising_before_claim_skips_the_claim_and_is_reported() -> None:
    failures: list[HookFailure] = []
    chain = Chain([Raising("before_claim")], on_error=failures.append)
    assert chain.before_claim(["etl"], 4) == 0
    assert [(f.middleware, f.hook, str(f.error)) for f in failures] == [
        ("Raising", "before_claim", "before_claim broke")
    ]


def test_a_before_claim_that_returns_no_int_skips_the_claim() -> None:
    class Bad(Middleware):
        def before_claim(self, queues: Sequence[str], limit: int) -> int:
            return "3"  # type: ignore[return-value]

    failures: list[HookFailure] = []
    assert Chain([Bad()], on_error=failures.append).before_claim(["etl"], 4) == 0
    assert "return an int from 0 to the limit it was given (4)" in str(failures[0].error)


@pytest.mark.parametrize(
    "hook", ["after_claim", "before_execute", "after_execute", "on_worker_start"]
)
def test_other_raising_hooks_are_reported_and_the_rest_still_run(hook: str) -> None:
    failures: list[HookFailure] = []
    calls: list[str] = []
    chain = Chain([Recorder("a", calls), Raising(hook), Recorder("b", calls)], failures.append)
    chain.after_claim([job()])
    chain.before_execute(job())
    chain.after_execute(Attempt(job(), Outcome("j1", 1, JobState.SUCCEEDED), 0.1))
    chain.worker_started(INFO)
    assert [f.hook for f in failures] == [hook]
    assert calls == [
        "b.after_claim(1)", "a.after_claim(1)", "a.before", "b.before",
        "b.after", "a.after", "a.start", "b.start",
    ]  # fmt: skip


def test_a_reporter_that_raises_is_ignored() -> None:
    def broken(failure: HookFailure) -> None:
        raise ValueError("reporter broke")

    assert Chain([Raising("before_claim")], broken).before_claim(["etl"], 3) == 0


@pytest.mark.parametrize("where", ["around_before", "around_after"])
def test_an_around_execute_error_of_its_own_names_the_middleware(where: str) -> None:
    chain = Chain([Raising(where)])
    with pytest.raises(MiddlewareError) as info:
        chain.execute(job(), lambda: 1)
    assert info.value.middleware == "Raising"
    assert info.value.hook == "around_execute"
    assert "middleware 'Raising' raised RuntimeError in around_execute for job j1" in str(
        info.value
    )


def test_the_jobs_own_error_passes_through_every_wrap_unchanged() -> None:
    calls: list[str] = []
    chain = Chain([Recorder("a", calls), Raising("never"), Recorder("b", calls)])
    boom = KeyError("missing")

    def fails() -> int:
        raise boom

    with pytest.raises(KeyError) as info:
        chain.execute(job(), fails)
    assert info.value is boom
    assert calls == ["a.enter", "b.enter", "b.exit", "a.exit"]


def test_an_inner_middlewares_error_stays_its_own_through_the_outer_ones() -> None:
    calls: list[str] = []
    chain = Chain([Recorder("outer", calls), Raising("around_before")])
    with pytest.raises(MiddlewareError) as info:
        chain.execute(job(), lambda: 1)
    assert info.value.middleware == "Raising"


def test_an_async_wrap_error_of_its_own_names_the_middleware() -> None:
    class AsyncRaising(Middleware):
        async def around_execute_async(self, job: Job, call: Callable[[], Awaitable[T]]) -> T:
            value = await call()
            raise LookupError(f"span exporter down after {value!r}")

    async def ok() -> int:
        return 1

    with pytest.raises(MiddlewareError, match="around_execute_async for job j1"):
        finish(Chain([AsyncRaising()]).execute_async(job(), ok))


def test_only_middleware_instances_register() -> None:
    with pytest.raises(TypeError, match="subclass Middleware and pass an instance"):
        Chain([Timing])  # type: ignore[list-item]
    with pytest.raises(TypeError, match="got 'timing'"):
        faena.App(middleware=["timing"])  # type: ignore[list-item]


def test_hooks_nobody_overrides_are_skipped() -> None:
    chain = Chain([ClaimRateLimit(5, clock=ManualClock().now)])
    assert chain.has("before_claim") and not chain.has("around_execute")


def test_the_rate_limit_refuses_then_allows_as_the_clock_moves() -> None:
    clock = ManualClock(start=100.0)
    limiter = ClaimRateLimit(per_second=2, clock=clock.now)
    chain = Chain([limiter])
    assert chain.before_claim(["etl"], 16) == 2  # the burst
    assert chain.before_claim(["etl"], 16) == 0  # refused until a token comes back
    clock.advance(0.5)
    assert chain.before_claim(["etl"], 16) == 1
    clock.advance(10)
    assert chain.before_claim(["etl"], 1) == 1  # never more than the turn's limit
    assert chain.before_claim(["etl"], 16) == 1  # the bucket holds 2 tokens at most


def test_the_timing_span_wraps_sync_and_async_calls_and_sees_errors() -> None:
    timing = Timing()
    chain = Chain([timing])
    assert chain.execute(job("a"), lambda: "ok") == "ok"
    with pytest.raises(ZeroDivisionError):
        chain.execute(job("b"), lambda: 1 // 0)

    async def coro() -> str:
        return "async"

    assert finish(chain.execute_async(job("c"), coro)) == "async"
    assert [(jid, raised) for jid, _, raised in timing.spans] == [
        ("a", False),
        ("b", True),
        ("c", False),
    ]


def test_the_worker_chain_publishes_job_events_outermost_and_hook_errors() -> None:
    bus = ev.EventBus()
    seen: list[ev.Event] = []
    bus.subscribe(None, seen.append)
    events = WorkerEvents(bus, ManualClock(), "w1")
    calls: list[str] = []
    registry = new_registry(process=False)
    metrics = JobMetrics(registry, task_names={"etl.load"})
    chain, job_events = worker_chain(events, [Recorder("app", calls)], [Raising("after_execute")])
    chain.add(metrics)
    assert [m.name for m in chain] == ["JobEvents", "app", "Raising", "JobMetrics"]
    chain.before_execute(job())
    assert [e.name for e in seen] == [ev.JOB_CLAIMED]
    done = [(RunResult(job(), 0.25), Outcome("j1", 1, JobState.SUCCEEDED))]
    events.reported(done, [True])
    names = [e.name for e in seen]
    assert names == [ev.JOB_CLAIMED, ev.WORKER_MIDDLEWARE_ERROR, ev.JOB_SUCCEEDED]
    error = seen[1].fields
    assert (error["middleware"], error["hook"], error["job_id"]) == (
        "Raising",
        "after_execute",
        "j1",
    )
    assert calls == ["app.before", "app.after"]
    assert metrics.processed.labels("etl", "etl.load", "succeeded")._value.get() == 1
    job_events.publish_claimed = False
    chain.before_execute(job("j2"))
    assert len(seen) == 3
