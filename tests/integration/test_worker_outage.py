"""A broker that refuses every call for a while: the worker backs off for real, stays alive,
says so once (and once more when the broker is back), is not ready meanwhile, and reports
the results that ended during the outage afterwards."""

from __future__ import annotations

import threading
import time
from typing import Any

from tests.worker_threads import run

import faena
from faena.brokers.memory import MemoryBroker
from faena.errors import BrokerError


class RefusingBroker(MemoryBroker):
    """Refuses the worker's calls while ``refusing`` is set, as a full Redis would."""

    def __init__(self) -> None:
        super().__init__()
        self.refusing = False
        self.refused = 0
        self._count = threading.Lock()

    def _gate(self) -> None:
        if self.refusing:
            with self._count:
                self.refused += 1
            raise BrokerError("OOM command not allowed when used memory > 'maxmemory' (test)")

    def finish_and_claim(self, *args: Any, **kwargs: Any) -> Any:
        self._gate()
        return super().finish_and_claim(*args, **kwargs)

    def heartbeat(self, *args: Any, **kwargs: Any) -> Any:
        self._gate()
        return super().heartbeat(*args, **kwargs)

    def reap(self) -> Any:
        self._gate()
        return super().reap()


def wait_for(predicate: Any, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_a_worker_rides_out_a_broker_that_refuses_every_call() -> None:
    broker = RefusingBroker()
    app = faena.App(broker=broker, lease_seconds=3.0)  # a heartbeat every second
    told: list[tuple[str, dict[str, Any]]] = []
    for name in ("worker.broker_unavailable", "worker.broker_recovered", "worker.error"):
        app.events.subscribe(name, lambda e: told.append((e.name, dict(e.fields))))
    running, go_on = threading.Event(), threading.Event()

    @app.task
    def held() -> str:
        running.set()
        go_on.wait(20)
        return "done"

    first = held.enqueue()
    w, t = run(app, concurrency=2)
    try:
        assert running.wait(10)
        wait_for(lambda: w.ready)
        broker.refusing = True
        go_on.set()  # the job ends during the outage: its result must wait, not be lost
        wait_for(lambda: broker.refused >= 3)
        assert not w.ready  # /readyz answers 503
        before = broker.refused
        time.sleep(1.0)
        # with a real back-off (0.1 s doubling, jittered) a second brings a handful of
        # calls; the wait that did not wait made thousands, and died at the 1,024th
        assert broker.refused - before < 30
        assert t.is_alive()
        assert [n for n, _ in told] == ["worker.broker_unavailable"]  # one line, not one a call
        assert told[0][1]["error_type"] == "BrokerError"
        assert "maxmemory" in told[0][1]["error_message"]

        broker.refusing = False
        assert first.wait(timeout=20) == "done"  # the result held through the outage
        wait_for(lambda: w.ready)
        assert held.enqueue().wait(timeout=20) == "done"
        names = [n for n, _ in told]
        assert names == ["worker.broker_unavailable", "worker.broker_recovered"]
        assert told[1][1]["failed_calls"] == broker.refused
        assert told[1][1]["duration_ms"] > 0
    finally:
        go_on.set()
        w.stop()
        t.join(10)
    assert not t.is_alive()


def test_a_stop_during_an_outage_is_not_held_up_by_the_backoff() -> None:
    broker = RefusingBroker()
    app = faena.App(broker=broker)

    @app.task
    def quick() -> None:
        pass

    w, t = run(app, concurrency=1, grace=0.0)
    wait_for(lambda: w.ready)
    broker.refusing = True
    wait_for(lambda: broker.refused >= 7)  # the back-off reached seconds
    w.stop()
    t.join(10)
    assert not t.is_alive()
