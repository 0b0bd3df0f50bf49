"""The autoscaler's state in the store: what the supervisor reports after each sync and
between syncs, the rule it names, and that a failing store does not stop the scaling."""

from __future__ import annotations

import logging

import pytest
from tests.autoscale_fakes import BEHAVIOR, QUEUE_EXTERNAL, T0, hpa, make_supervisor

from faena.autoscale.autoscaler import Decision, MetricValue
from faena.autoscale.state import STARTING, StateReporter, held_by
from faena.brokers.memory import MemoryBroker
from faena.brokers.protocol import AutoscalerMetric, AutoscalerReport
from faena.core.clock import ManualClock

SPEC = hpa(QUEUE_EXTERNAL, BEHAVIOR, min_replicas=1, max_replicas=10)


def reporter(broker: MemoryBroker) -> StateReporter:
    return StateReporter(broker.report_autoscaler, name="w", spec=SPEC, sync_period=15)


def test_the_supervisor_reports_desired_vs_ready_and_the_limiting_policy() -> None:
    broker = MemoryBroker(clock=ManualClock(T0))
    queue = [100]
    sup, procs = make_supervisor(queue)
    sup.state = reporter(broker)
    sup.tick(T0)
    sup.state.starting(sup.autoscaler.replicas, sup.ready_count())
    [first] = broker.list_autoscalers()
    assert (first.report.reason, first.report.desired, first.report.current) == (STARTING, 1, 0)
    sup.workers[0].ready_at = T0
    sup.tick(T0 + 1)  # a worker became ready between syncs: reported at once
    assert broker.list_autoscalers()[0].report.current == 1
    sup.sync(T0 + 15)
    got = broker.list_autoscalers()[0].report
    # 100 waiting / 5 per worker = 20 wanted; +2 pods per 30 s lets 1 -> 3
    assert (got.desired, got.current, got.metric_desired) == (3, 1, 20)
    assert (got.reason, got.limited_by) == ("ScaleUpLimit", "scaleUp policy Pods 2 per 30s")
    assert got.metrics == (AutoscalerMetric("External/celery_queue_length", "100", "5", 20),)
    assert got.last_scale_at == T0 + 15
    assert (got.min_replicas, got.max_replicas, got.name) == (1, 10, "w")
    for w in sup.workers:
        w.ready_at = T0 + 16
    sup.tick(T0 + 16)
    assert broker.list_autoscalers()[0].report.current == 3
    assert len(procs) == 3


def test_a_failing_store_is_logged_once_and_scaling_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    calls: list[AutoscalerReport] = []

    def broken(report: AutoscalerReport) -> None:
        calls.append(report)
        raise OSError("disk full")

    sup, procs = make_supervisor([100])
    sup.state = StateReporter(broken, name="w", spec=SPEC, sync_period=15)
    with caplog.at_level(logging.WARNING, logger="faena.autoscale"):
        sup.tick(T0)
        sup.workers[0].ready_at = T0
        d1 = sup.sync(T0 + 15)
        d2 = sup.sync(T0 + 45)
    assert (d1.desired, d2.desired) == (3, 6) and len(procs) == 6  # +100 % of 3 wins
    assert len(calls) == 2
    failed = [r for r in caplog.records if getattr(r, "event", "") == "autoscale.state_failed"]
    assert len(failed) == 1 and failed[0].error_message == "disk full"  # type: ignore[attr-defined]


def decision(reason: str, current: int, desired: int, wanted: int | None, **kw: object) -> Decision:
    return Decision(T0, current, desired, reason, wanted, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("d", "why"),
    [
        (decision("TooManyReplicas", 10, 10, 40), "maxReplicas 10"),
        (decision("TooFewReplicas", 1, 1, 0), "minReplicas 1"),
        (decision("DesiredWithinRange", 1, 1, 0), "minReplicas 1"),
        (decision("DesiredWithinRange", 10, 10, 12), "maxReplicas 10"),
        (decision("FailedGetMetrics", 3, 3, None), "no metric could be read: the count is kept"),
        (
            decision(
                "DesiredWithinRange",
                4,
                4,
                4,
                metrics=(MetricValue("External/q", "5250m", 4, target="5"),),
            ),
            "tolerance: the metrics are within 10% of their targets",
        ),
        (
            decision(
                "DesiredWithinRange",
                4,
                4,
                4,
                metrics=(MetricValue("External/q", "5", 4, target="5"),),
            ),
            None,
        ),
        (decision("ScaleDownLimit", 6, 3, 0, limited_by="scaleDown policy"), "scaleDown policy"),
    ],
)
def test_the_rule_that_held_the_count_is_named(d: Decision, why: str | None) -> None:
    assert held_by(d, SPEC, 0.1) == why
