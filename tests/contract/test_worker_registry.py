"""The worker registry: a worker registers, reports its state at each heartbeat, is lost
when its reports stop, and its record is pruned after the retention."""

from __future__ import annotations

import dataclasses

import pytest

from faena.brokers.protocol import Broker, WorkerReport
from faena.core.clock import ManualClock
from faena.errors import ConfigError, InvalidValueError
from tests.contract.conftest import Backend


def report(worker: str = "host-a:101:abc", **kw: object) -> WorkerReport:
    base = WorkerReport(
        id=worker,
        host="host-a",
        pid=101,
        queues=("etl", "dq"),
        concurrency=4,
        version="0.1.0",
        started_at=1_000.0,
        lost_after=30.0,
    )
    return dataclasses.replace(base, **kw)  # type: ignore[arg-type]


def test_a_worker_registers_and_its_report_reads_back(broker: Broker, clock: ManualClock) -> None:
    assert broker.list_workers() == []
    broker.report_worker(report())
    [record] = broker.list_workers()
    assert record.report == report()
    assert record.seen_at == pytest.approx(clock.now())
    assert record.state_at(clock.now()) == "running"


def test_each_report_replaces_the_last_and_moves_seen_at(
    broker: Broker, clock: ManualClock
) -> None:
    broker.report_worker(report())
    clock.advance(10)
    broker.report_worker(report(state="draining"))
    [record] = broker.list_workers()
    assert record.report.state == "draining"
    assert record.seen_at == pytest.approx(clock.now())
    broker.report_worker(report(state="stopped"))
    assert broker.list_workers()[0].state_at(clock.now()) == "stopped"


def test_a_silent_worker_is_lost_and_a_stopped_one_is_not(
    broker: Broker, clock: ManualClock
) -> None:
    broker.report_worker(report("w-live"))
    broker.report_worker(report("w-stopped", state="stopped"))
    clock.advance(31)
    states = {r.report.id: r.state_at(clock.now()) for r in broker.list_workers()}
    assert states == {"w-live": "lost", "w-stopped": "stopped"}
    broker.report_worker(report("w-live"))  # it came back
    assert broker.list_workers()[0].state_at(clock.now()) == "running"


def test_records_older_than_the_retention_are_pruned(broker: Broker, clock: ManualClock) -> None:
    broker.report_worker(report("w-old", state="stopped"))
    clock.advance(100)
    broker.report_worker(report("w-new"))
    assert broker.prune_workers(clock.now() - 50) == 1
    assert [r.report.id for r in broker.list_workers()] == ["w-new"]
    assert broker.prune_workers(clock.now() - 50) == 0


def test_workers_are_listed_by_id(broker: Broker) -> None:
    for worker in ("w-b", "w-c", "w-a"):
        broker.report_worker(report(worker))
    assert [r.report.id for r in broker.list_workers()] == ["w-a", "w-b", "w-c"]


@pytest.mark.parametrize(
    "bad",
    [
        {"id": ""},
        {"id": "a\0b"},
        {"host": "\udcff"},
        {"pid": -1},
        {"concurrency": 0},
        {"queues": ["etl"]},
        {"queues": ("",)},
        {"started_at": float("nan")},
        {"lost_after": 0.0},
        {"state": "lost"},
    ],
    ids=lambda d: next(iter(d)),
)
def test_a_bad_report_is_refused_before_anything_is_written(
    broker: Broker, bad: dict[str, object]
) -> None:
    with pytest.raises(InvalidValueError) as caught:
        broker.report_worker(report(**bad))
    assert isinstance(caught.value, ConfigError)
    assert broker.list_workers() == []


def test_the_registry_outlasts_reopening_the_broker(backend: Backend, clock: ManualClock) -> None:
    if backend.url is None:
        pytest.skip("the memory broker keeps nothing across instances")
    first = backend.open(clock)
    first.setup()
    first.report_worker(report())
    first.close()
    again = backend.open(clock)
    try:
        assert [r.report for r in again.list_workers()] == [report()]
    finally:
        destroy = getattr(again, "destroy", None)
        if callable(destroy):
            destroy()
        again.close()
