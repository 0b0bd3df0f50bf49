"""The gateway's shared wake-ups on a real SQLite broker: a wake-up between the claim and the
wait is not missed, one waker serves every call of a type, and a closed hub ends waits."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from faena.brokers.protocol import Broker
from faena.brokers.url import open_broker
from faena.core.job import NewJob
from faena.zeebe import wakeups as wk
from faena.zeebe.wakeups import Wakeups


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    b = open_broker(f"sqlite:///{tmp_path / 'faena.db'}")
    b.setup()
    yield b
    b.close()


def test_a_wake_up_after_the_generation_was_read_is_never_missed(broker: Broker) -> None:
    hub = Wakeups(lambda: broker)
    try:
        seen = hub.generation("q")
        broker.enqueue([NewJob(task="t", queue="q")])  # between the claim and the wait
        assert hub.wait("q", seen, 30.0) is True
        assert hub.generation("q") != seen
        assert hub.wait("other", hub.generation("other"), 0.05) is False  # nothing came
    finally:
        hub.close()


def test_one_waker_per_type_however_many_calls_wait(broker: Broker) -> None:
    opened: list[str] = []

    class Counting:
        def __getattr__(self, name: str) -> object:
            return getattr(broker, name)

        def waker(self, queues: list[str]) -> object:
            opened.extend(queues)
            return broker.waker(queues)

    hub = Wakeups(lambda: Counting())  # type: ignore[arg-type, return-value]
    try:
        seen = [hub.generation("q") for _ in range(20)]
        woken: list[bool] = []
        waits = [
            threading.Thread(target=lambda s=s: woken.append(hub.wait("q", s, 30.0))) for s in seen
        ]
        for t in waits:
            t.start()
        broker.enqueue([NewJob(task="t", queue="q")])
        for t in waits:
            t.join(30)
        assert woken == [True] * 20
        assert opened == ["q"]
    finally:
        hub.close()


def test_types_beyond_the_limit_wait_on_the_safety_net(
    broker: Broker, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(wk, "MAX_WAKERS", 1)
    hub = Wakeups(lambda: broker)
    try:
        hub.generation("first")
        seen = hub.generation("second")  # no waker of its own
        broker.enqueue([NewJob(task="t", queue="second")])
        assert hub.wait("second", seen, 0.2) is False
    finally:
        hub.close()


def test_closing_ends_every_wait(broker: Broker) -> None:
    hub = Wakeups(lambda: broker)
    seen = hub.generation("q")
    done: list[bool] = []
    waiting = threading.Thread(target=lambda: done.append(hub.wait("q", seen, 60.0)))
    waiting.start()
    hub.close()
    waiting.join(30)
    assert done == [True]
