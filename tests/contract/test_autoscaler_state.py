"""The autoscalers' state: an autoscaler records its latest decision (desired vs actual
workers, the metrics against their targets, the rule that limited it), every reader sees the
same record, a silent one is stale, and old records are pruned."""

from __future__ import annotations

import dataclasses

import pytest

from faena.brokers.protocol import AutoscalerMetric, AutoscalerReport, Broker
from faena.core.clock import ManualClock
from faena.errors import ConfigError, InvalidValueError
from tests.contract.conftest import Backend

QUEUE_METRIC = AutoscalerMetric(
    metric="External/celery_queue_length", current="37", target="10", proposal=4
)


def report(name: str = "etl-worker", **kw: object) -> AutoscalerReport:
    base = AutoscalerReport(
        name=name,
        host="host-a",
        pid=4242,
        desired=4,
        current=2,
        min_replicas=1,
        max_replicas=8,
        reason="ScaleUpLimit",
        metric_desired=4,
        limited_by="scaleUp policy Pods 2 per 15s",
        metrics=(
            QUEUE_METRIC,
            AutoscalerMetric(
                metric="Resource/cpu",
                current=None,
                target="80%",
                proposal=None,
                error="no worker is ready",
            ),
        ),
        last_scale_at=1_000.5,
        stale_after=45.0,
    )
    return dataclasses.replace(base, **kw)  # type: ignore[arg-type]


def test_a_report_reads_back_whole(broker: Broker, clock: ManualClock) -> None:
    assert broker.list_autoscalers() == []
    broker.report_autoscaler(report())
    [record] = broker.list_autoscalers()
    assert record.report == report()
    assert record.updated_at == pytest.approx(clock.now())
    assert not record.stale_at(clock.now())


def test_optional_fields_read_back_as_none(broker: Broker) -> None:
    bare = report(metric_desired=None, limited_by=None, metrics=(), last_scale_at=None)
    broker.report_autoscaler(bare)
    assert broker.list_autoscalers()[0].report == bare


def test_each_report_replaces_the_last_and_moves_updated_at(
    broker: Broker, clock: ManualClock
) -> None:
    broker.report_autoscaler(report())
    clock.advance(15)
    broker.report_autoscaler(report(current=4, reason="DesiredWithinRange", limited_by=None))
    [record] = broker.list_autoscalers()
    assert (record.report.current, record.report.reason, record.report.limited_by) == (
        4,
        "DesiredWithinRange",
        None,
    )
    assert record.updated_at == pytest.approx(clock.now())


def test_a_silent_autoscaler_is_stale_until_it_reports_again(
    broker: Broker, clock: ManualClock
) -> None:
    broker.report_autoscaler(report())
    clock.advance(46)
    assert broker.list_autoscalers()[0].stale_at(clock.now())
    broker.report_autoscaler(report())
    assert not broker.list_autoscalers()[0].stale_at(clock.now())


def test_autoscalers_are_listed_by_name_and_old_ones_pruned(
    broker: Broker, clock: ManualClock
) -> None:
    for name in ("dq-worker", "etl-worker"):
        broker.report_autoscaler(report(name))
    clock.advance(100)
    broker.report_autoscaler(report("camunda-worker"))
    names = [r.report.name for r in broker.list_autoscalers()]
    assert names == ["camunda-worker", "dq-worker", "etl-worker"]
    assert broker.prune_autoscalers(clock.now() - 50) == 2
    assert [r.report.name for r in broker.list_autoscalers()] == ["camunda-worker"]
    assert broker.prune_autoscalers(clock.now() - 50) == 0


def test_autoscalers_and_workers_are_kept_apart(broker: Broker) -> None:
    broker.report_autoscaler(report())
    assert broker.list_workers() == []
    assert broker.prune_workers(float("inf")) == 0
    assert len(broker.list_autoscalers()) == 1


@pytest.mark.parametrize(
    "bad",
    [
        {"name": ""},
        {"name": "a\0b"},
        {"host": "\udcff"},
        {"pid": -1},
        {"desired": -1},
        {"current": 1.5},
        {"max_replicas": 0},
        {"min_replicas": 5, "max_replicas": 3},
        {"reason": ""},
        {"reason": "x" * 1001},
        {"limited_by": ""},
        {"last_scale_at": float("inf")},
        {"stale_after": 0.0},
        {"metrics": [QUEUE_METRIC]},
        {"metrics": (dataclasses.replace(QUEUE_METRIC, proposal=-2),)},
        {"metrics": (dataclasses.replace(QUEUE_METRIC, metric=""),)},
        {"metrics": (QUEUE_METRIC,) * 33},
    ],
    ids=lambda d: "-".join(d),
)
def test_a_bad_report_is_refused_before_anything_is_written(
    broker: Broker, bad: dict[str, object]
) -> None:
    broker.report_autoscaler(report("kept"))
    with pytest.raises(InvalidValueError) as caught:
        broker.report_autoscaler(dataclasses.replace(report("kept"), **bad))  # type: ignore[arg-type]
    assert isinstance(caught.value, ConfigError)
    assert caught.value.field.startswith("autoscaler")
    assert [r.report for r in broker.list_autoscalers()] == [report("kept")]


def test_the_state_outlasts_reopening_the_broker(backend: Backend, clock: ManualClock) -> None:
    if backend.url is None:
        pytest.skip("the memory broker keeps nothing across instances")
    first = backend.open(clock)
    first.setup()
    first.report_autoscaler(report())
    first.close()
    again = backend.open(clock)
    try:
        assert [r.report for r in again.list_autoscalers()] == [report()]
    finally:
        destroy = getattr(again, "destroy", None)
        if callable(destroy):
            destroy()
        again.close()
