"""What the composition gives the worker: its log sink and its clock (no module of the
worker picks either itself), and the outcome decision as a pure function."""

from __future__ import annotations

import random
import threading
import time
from typing import Any

import pytest
from tests.worker_threads import run

import faena
from faena.brokers.memory import MemoryBroker
from faena.core import events as ev
from faena.core import outcomes
from faena.core.clock import ManualClock
from faena.core.events import EventBus
from faena.core.job import ErrorInfo, Job, Outcome
from faena.core.logsink import NO_LOGS
from faena.core.retry import RetryPolicy
from faena.core.states import JobState
from faena.observability.logs import log_event
from faena.worker import Worker


class RecordingSink:
    def __init__(self) -> None:
        self.attached: list[EventBus] = []
        self.batched = 0
        self.flushes = 0
        self.lock = threading.Lock()

    def attach(self, bus: EventBus) -> None:
        self.attached.append(bus)

    def batch(self) -> None:
        self.batched += 1

    def flush(self) -> None:
        with self.lock:
            self.flushes += 1

    def needs(self, bus: EventBus, name: str) -> bool:
        return bus.wants(name)

    def configure_default(self) -> None:
        raise AssertionError("a worker never configures logging")


def test_the_worker_logs_through_the_sink_it_is_given(stop: list) -> None:
    app = faena.App(broker=MemoryBroker())

    @app.task
    def double(x: int) -> int:
        return 2 * x

    sink = RecordingSink()
    w, t = run(app, concurrency=2, log_sink=sink)
    stop.append((w, t))
    handles = [double.enqueue(i) for i in range(5)]
    assert [h.wait(timeout=10) for h in handles] == [0, 2, 4, 6, 8]
    w.stop(graceful=False)
    t.join(10)
    assert sink.attached == [app.events], "attached once, to the app's bus"
    assert sink.batched == 1, "lines are batched from the start of run()"
    assert sink.flushes >= 1, "written out before the worker sleeps and when it stops"
    assert log_event not in app.events.handlers(ev.JOB_SUCCEEDED), "no default sink as well"


def test_an_app_built_in_code_logs_its_events_unless_told_otherwise() -> None:
    default = faena.App(broker=MemoryBroker())
    Worker(default, install_signals=False).close()  # never run: its inbox is closed here
    assert log_event in default.events.handlers(ev.JOB_SUCCEEDED)
    quiet = faena.App(broker=MemoryBroker(), log_sink=NO_LOGS)
    Worker(quiet, install_signals=False).close()
    assert log_event not in quiet.events.handlers(ev.JOB_SUCCEEDED)


def test_retry_in_seconds_is_told_on_the_apps_clock(stop: list) -> None:
    """The delay before a retry is the retry time less the app's now, not the wall clock's
    (a manual clock 30 years back would make it about 30 years)."""
    clock = ManualClock(start=1_000_000_000.0)
    app = faena.App(broker=MemoryBroker(clock=clock), clock=clock)
    failed: list[dict[str, Any]] = []
    app.events.subscribe(ev.JOB_FAILED, lambda e: failed.append(dict(e.fields)))

    @app.task(retries=2, backoff_base=1.0, backoff_cap=10.0)
    def boom() -> None:
        raise ValueError("no")

    boom.enqueue()
    stop.append(run(app, concurrency=1))
    deadline = time.monotonic() + 10
    while not failed:
        assert time.monotonic() < deadline, "the job never failed"
        time.sleep(0.01)
    assert failed[0]["will_retry"] is True
    assert 0 <= failed[0]["retry_in_seconds"] <= 10.0


ERROR = ErrorInfo("ValueError", "no", "Traceback ...")


def _job(tries: int = 1, max_attempts: int = 3) -> Job:
    return Job(
        id="j0",
        task="t",
        queue="q",
        args_json="[]",
        kwargs_json="{}",
        state=JobState.RUNNING,
        priority=0,
        pool="default",
        pool_slots=1,
        attempt=tries,
        tries=tries,
        max_attempts=max_attempts,
        timeout=None,
        idempotency_key=None,
        enqueued_at=0.0,
        run_at=0.0,
    )


def _decide(**kw: Any) -> Outcome:
    fields: dict[str, Any] = {
        "result_json": None,
        "error": None,
        "retryable": True,
        "cancelled": False,
        "policy": RetryPolicy(retries=2),
        "now": 100.0,
        "rng": random.Random(7),
    }
    fields.update(kw)
    job = fields.pop("job", _job())
    return outcomes.decide(job, **fields)


def test_the_outcome_of_an_attempt_is_a_pure_decision() -> None:
    assert _decide().state is JobState.SUCCEEDED
    assert _decide().result_json == "null", "a task that returns nothing succeeds with null"
    assert _decide(result_json="[1]").result_json == "[1]"
    assert _decide(cancelled=True, error=ERROR).state is JobState.CANCELLED
    assert _decide(error=ERROR, policy=None).state is JobState.DEAD, "an unknown task"
    assert _decide(error=ERROR, retryable=False).state is JobState.DEAD
    assert _decide(error=ERROR, job=_job(tries=3)).state is JobState.DEAD, "no attempts left"
    retried = _decide(error=ERROR)
    assert retried.state is JobState.FAILED and retried.error == ERROR
    assert retried.retry_at is not None and 100.0 <= retried.retry_at <= 100.0 + 1.0
    assert _decide(error=ERROR).retry_at == retried.retry_at, "the same rng: the same delay"


@pytest.mark.parametrize("tries", [1, 2])
def test_a_retry_waits_within_the_policys_ceiling(tries: int) -> None:
    policy = RetryPolicy(retries=2, backoff_base=2.0, backoff_cap=300.0)
    o = _decide(error=ERROR, policy=policy, job=_job(tries=tries))
    assert o.retry_at is not None
    assert 100.0 <= o.retry_at <= 100.0 + policy.ceiling(tries)
