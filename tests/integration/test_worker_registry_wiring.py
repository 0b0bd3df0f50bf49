"""A worker registers in its broker's worker registry, reports ``draining`` while it stops and
``stopped`` once it has; a registry that fails never stops the jobs."""

from __future__ import annotations

import os
import socket
import threading
import time
from typing import Any

from tests.worker_threads import run

import faena
from faena.brokers.memory import MemoryBroker
from faena.brokers.protocol import WorkerReport
from faena.version import __version__
from faena.worker import Worker


def _until(what: Any, timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = what()
        if found:
            return found
        time.sleep(0.01)
    raise AssertionError("not seen in time")


def test_a_worker_registers_and_reports_stopped_when_it_exits(
    stop: list[tuple[Worker, threading.Thread]],
) -> None:
    broker = MemoryBroker()
    app = faena.App(broker=broker)

    @app.task(queue="etl")
    def noop() -> None:
        return None

    w, t = run(app, concurrency=3)
    stop.append((w, t))
    [record] = _until(broker.list_workers)
    assert record.report.id == w.name
    assert record.report.queues == ("etl",)
    assert record.report.concurrency == 3
    assert record.report.pid == os.getpid() and record.report.host == socket.gethostname()
    assert record.report.version == __version__
    assert record.report.lost_after == app.lease_seconds
    assert record.state_at(app.clock.now()) == "running"
    noop.enqueue()
    w.stop()
    t.join(10)
    assert not t.is_alive()
    [record] = broker.list_workers()
    assert record.report.state == "stopped"


class FailingRegistry(MemoryBroker):
    def report_worker(self, report: WorkerReport) -> None:
        raise RuntimeError("registry down")


def test_a_failing_registry_does_not_stop_the_jobs(
    stop: list[tuple[Worker, threading.Thread]],
) -> None:
    app = faena.App(broker=FailingRegistry())

    @app.task
    def double(x: int) -> int:
        return 2 * x

    w, t = run(app, concurrency=2)
    stop.append((w, t))
    assert double.enqueue(21).wait(timeout=10) == 42
