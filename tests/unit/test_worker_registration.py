"""The worker's registry entry: registered at the first beat (pruning records gone for a
day), then ``running`` or ``draining`` at each beat, ``stopped`` at exit; failures logged once."""

from __future__ import annotations

import logging

import pytest

from faena.brokers.memory import MemoryBroker
from faena.brokers.protocol import WorkerReport
from faena.core.clock import ManualClock
from faena.worker.registration import RETENTION_SECONDS, Registration


def registration(broker: MemoryBroker, clock: ManualClock, draining: list[bool]) -> Registration:
    return Registration(broker, "w1", ["etl"], 4, 30.0, clock, lambda: draining[0])


def test_the_states_follow_the_worker() -> None:
    clock = ManualClock()
    broker = MemoryBroker(clock=clock)
    draining = [False]
    reg = registration(broker, clock, draining)
    reg.beat()
    assert [r.report.state for r in broker.list_workers()] == ["running"]
    draining[0] = True
    reg.beat()
    assert [r.report.state for r in broker.list_workers()] == ["draining"]
    reg.stopped()
    [record] = broker.list_workers()
    assert record.report.state == "stopped" and record.report.lost_after == 30.0


def test_registering_prunes_records_gone_for_longer_than_the_retention() -> None:
    clock = ManualClock()
    broker = MemoryBroker(clock=clock)
    old = WorkerReport("old", "h", 1, ("etl",), 1, "0", clock.now(), state="stopped")
    broker.report_worker(old)
    clock.advance(RETENTION_SECONDS + 1)
    registration(broker, clock, [False]).beat()
    assert [r.report.id for r in broker.list_workers()] == ["w1"]


class Refusing(MemoryBroker):
    def report_worker(self, report: WorkerReport) -> None:
        raise RuntimeError("registry down")


def test_a_failing_report_is_logged_once_and_never_raises(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = ManualClock()
    reg = registration(Refusing(clock=clock), clock, [False])
    with caplog.at_level(logging.WARNING, logger="faena.worker"):
        for _ in range(3):
            reg.beat()
        reg.stopped()
    events = [getattr(r, "event", None) for r in caplog.records]
    assert events == ["worker.registry_failed"]
