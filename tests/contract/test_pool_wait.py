"""A worker waiting for a pool slot that another worker frees, on every backend.

No broker wakes a worker when a job ends elsewhere and frees a slot of its pool; the claim
says it left a job behind (``saturated``) and the worker asks again soon: every
``SATURATED_POLL_SECONDS``, not as fast as round trips go. The safety-net wake-up is pushed
out of reach here, so only that can start the waiting job.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

import faena
from faena.brokers.protocol import Broker
from faena.core.clock import SystemClock
from faena.core.states import JobState
from faena.worker import Worker, runtime
from tests.contract.conftest import Backend


@pytest.fixture
def real_broker(backend: Backend) -> Iterator[Broker]:
    b = backend.open(SystemClock())
    b.setup()
    b.set_pools({"tiny": 1})
    yield b
    destroy = getattr(b, "destroy", None)
    if callable(destroy):
        destroy()
    b.close()


def test_a_job_waiting_for_a_pool_slot_starts_when_another_worker_frees_it(
    real_broker: Broker, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(runtime, "IDLE_POLL_SECONDS", 120.0)
    app = faena.App(broker=real_broker)
    release = threading.Event()

    @app.task(queue="holder", pool="tiny")
    def hold() -> None:
        assert release.wait(30)

    @app.task(queue="waiter", pool="tiny")
    def after() -> str:
        return "ran"

    workers: list[tuple[Worker, threading.Thread]] = []

    def start(queue: str) -> None:
        w = Worker(app, queues=[queue], concurrency=1, install_signals=False)
        t = threading.Thread(target=w.run, daemon=True)
        t.start()
        workers.append((w, t))

    try:
        held = hold.enqueue()
        start("holder")
        deadline = time.monotonic() + 20
        while held.refresh().state is not JobState.RUNNING and time.monotonic() < deadline:
            time.sleep(0.02)
        assert held.refresh().state is JobState.RUNNING
        waiting = after.enqueue()
        start("waiter")
        time.sleep(0.5)  # the waiter has found the pool full by now
        assert waiting.refresh().state is JobState.QUEUED
        # meanwhile it asks about every 50 ms (a busy machine only makes that rarer); it used
        # to ask again at once, hundreds of times a second
        asked = _count_claims(real_broker, monkeypatch, seconds=1.0)
        assert 0 < asked <= 3 / runtime.SATURATED_POLL_SECONDS, asked
        release.set()  # the holder's job ends; its worker has nothing more to claim
        assert waiting.wait(timeout=20) == "ran"
    finally:
        release.set()
        for w, t in workers:
            w.stop(graceful=False)
            t.join(10)


def _count_claims(broker: Broker, monkeypatch: pytest.MonkeyPatch, seconds: float) -> int:
    """How many exchanges the workers make with ``broker`` over ``seconds``."""
    calls = [0]
    exchange = broker.finish_and_claim

    def counted(*args: Any, **kwargs: Any) -> Any:
        calls[0] += 1
        return exchange(*args, **kwargs)

    monkeypatch.setattr(broker, "finish_and_claim", counted)
    time.sleep(seconds)
    monkeypatch.setattr(broker, "finish_and_claim", exchange)
    return calls[0]
