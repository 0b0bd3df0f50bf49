"""Direct tests of the reconcile loop: state handling, scale events, the seed's pitfall."""

from __future__ import annotations

from faena.autoscale.hpa import (
    ControllerConfig,
    HPAState,
    MetricReading,
    Observation,
    reconcile,
    tolerances_for,
)
from faena.autoscale.hpa_behavior import Recommendation
from faena.autoscale.hpa_calc import PodInfo, PodSample
from faena.autoscale.spec import (
    Behavior,
    ExternalMetric,
    HPASpec,
    MetricTarget,
    PodsMetric,
    PolicyType,
    ScalingPolicy,
    ScalingRules,
    SelectPolicy,
)

NOW = 50_000.0


def _pods(n: int) -> tuple[PodInfo, ...]:
    return tuple(PodInfo(f"w-{i}") for i in range(n))


def _whole_queue_everywhere(n: int, queue: int) -> MetricReading:
    return MetricReading(pod_samples={f"w-{i}": PodSample(queue * 1000, NOW, 30) for i in range(n)})


def test_pods_metric_with_whole_queue_asks_n_times_too_many() -> None:
    # hpa-spec.md section 11: Q = 200, T = 20, N = 5 -> ceil(5 * 200 / 20) = 50 (right: 10).
    spec = HPASpec(max_replicas=100, metrics=(PodsMetric("q", MetricTarget.average_value(20_000)),))
    obs = Observation(5, 5, _pods(5), (_whole_queue_everywhere(5, 200),))
    result = reconcile(spec, obs, HPAState(recommendations=()), NOW, ControllerConfig())
    assert result.metric_desired == 50
    assert result.desired_replicas == 10  # legacy cap max(2 * 5, 4) this cycle


def test_external_average_value_asks_queue_over_target() -> None:
    spec = HPASpec(
        max_replicas=100, metrics=(ExternalMetric("q", MetricTarget.average_value(20_000)),)
    )
    obs = Observation(5, 5, _pods(5), (MetricReading(values_milli=(200_000,)),))
    result = reconcile(spec, obs, HPAState(recommendations=()), NOW)
    assert result.metric_desired == 10
    assert result.desired_replicas == 10
    assert result.metrics[0].proposal is not None
    assert result.metrics[0].proposal.usage == 40_000  # status: ceil(value / status replicas)


def test_behavior_records_scale_events_and_limits_next_cycle() -> None:
    behavior = Behavior(
        scale_up=ScalingRules(
            SelectPolicy.MAX,
            (ScalingPolicy(PolicyType.PODS, 2, 60),),
            stabilization_window_seconds=0,
        )
    )
    spec = HPASpec(
        max_replicas=20,
        metrics=(ExternalMetric("q", MetricTarget.average_value(1000)),),
        behavior=behavior,
    )
    reading = (MetricReading(values_milli=(10_000,)),)
    first = reconcile(spec, Observation(1, 1, _pods(1), reading), HPAState(), NOW)
    assert (first.desired_replicas, first.reason) == (3, "ScaleUpLimit")
    assert [e.replica_change for e in first.state.scale_up_events] == [2]
    # 15 s later the +2 is still inside the 60 s period: the period started at 1, limit 3.
    second = reconcile(spec, Observation(3, 3, _pods(3), reading), first.state, NOW + 15)
    assert (second.desired_replicas, second.rescale) == (3, False)
    # 60 s after the first event it no longer counts: 3 + 2 = 5.
    third = reconcile(spec, Observation(3, 3, _pods(3), reading), second.state, NOW + 60)
    assert third.desired_replicas == 5


def test_legacy_path_keeps_no_events_and_seeds_history() -> None:
    spec = HPASpec(
        max_replicas=10, metrics=(ExternalMetric("q", MetricTarget.average_value(1000)),)
    )
    result = reconcile(
        spec, Observation(4, 4, _pods(4), (MetricReading(values_milli=(1000,)),)), HPAState(), NOW
    )
    # wants 1, but the history seeded with the current 4 holds it for 5 minutes
    assert result.desired_replicas == 4
    assert result.state.recommendations == (Recommendation(4, NOW), Recommendation(1, NOW))
    assert result.state.scale_down_events == ()


def test_clamp_branch_records_event_with_behavior() -> None:
    spec = HPASpec(max_replicas=3, metrics=(), behavior=Behavior())
    result = reconcile(spec, Observation(5, 5), HPAState(), NOW)
    assert (result.desired_replicas, result.reason) == (3, "TooManyReplicas")
    assert [e.replica_change for e in result.state.scale_down_events] == [2]


def test_metric_fetch_error_and_no_metrics_do_not_scale() -> None:
    spec = HPASpec(max_replicas=10, metrics=(ExternalMetric("q", MetricTarget.average_value(1)),))
    failed = reconcile(
        spec, Observation(2, 2, _pods(2), (MetricReading(error="timeout"),)), HPAState(), NOW
    )
    assert (failed.desired_replicas, failed.rescale, failed.reason) == (
        2,
        False,
        "FailedGetMetrics",
    )
    assert failed.metrics[0].error is not None and "timeout" in failed.metrics[0].error


def test_behavior_tolerance_overrides_cluster_per_direction() -> None:
    rules = ScalingRules(SelectPolicy.MAX, (ScalingPolicy(PolicyType.PERCENT, 100, 15),), 0, 0.5)
    spec = HPASpec(max_replicas=5, metrics=(), behavior=Behavior(scale_up=rules))
    tol = tolerances_for(spec, ControllerConfig(tolerance=0.2))
    assert (tol.scale_down, tol.scale_up) == (0.2, 0.5)
