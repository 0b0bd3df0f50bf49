"""One reconcile of a HorizontalPodAutoscaler, exact to upstream (pure, clock injected).

:func:`reconcile` takes the HPA spec, what the controller observes (the scale subresource, the
pods, one reading per metric), the controller's memory for this HPA (recommendation history
and scale events) and ``now``; it returns the replica count to write and the new memory.
Nothing here reads a clock, sleeps or does I/O: the supervisor and the simulator call it every
sync period (15 s by default).

See ``docs/autoscaling.md`` for the algorithm and the order of operations.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from faena.autoscale.errors import ReplicaCalcError
from faena.autoscale.hpa_behavior import (
    Recommendation,
    ScaleEvent,
    convert_with_behavior_rate,
    convert_with_rules,
    stabilize_legacy,
    stabilize_with_behavior,
    store_scale_event,
)
from faena.autoscale.hpa_calc import (
    PodInfo,
    PodSample,
    Proposal,
    ReadinessTiming,
    Tolerances,
    average_value_replicas,
    plain_metric_replicas,
    resource_utilization_replicas,
    sum_external,
    value_replicas,
)
from faena.autoscale.spec import (
    Behavior,
    ExternalMetric,
    HPASpec,
    MetricSpec,
    MetricTarget,
    ObjectMetric,
    PodsMetric,
    ResourceMetric,
    TargetType,
)

SCALING_DISABLED = "ScalingDisabled"
FAILED_GET_METRICS = "FailedGetMetrics"


@dataclass(frozen=True)
class ControllerConfig:
    """kube-controller-manager settings for the HPA controller (production defaults)."""

    tolerance: float = 0.1
    cpu_initialization_period_s: float = 300.0
    delay_of_initial_readiness_s: float = 30.0
    downscale_stabilization_s: float = 300.0
    scale_up_limit_factor: float = 2.0
    scale_up_limit_minimum: float = 4.0
    sync_period_s: float = 15.0


@dataclass(frozen=True)
class HPAState:
    """The controller's memory for one HPA. ``recommendations is None``: none yet (a new or
    restarted controller), so the first reconcile seeds it with the current replica count."""

    recommendations: tuple[Recommendation, ...] | None = None
    scale_up_events: tuple[ScaleEvent, ...] = ()
    scale_down_events: tuple[ScaleEvent, ...] = ()


@dataclass(frozen=True)
class MetricReading:
    """What the metrics APIs returned for one metric of the spec.

    Resource and Pods metrics: ``pod_samples`` (pod name -> sample). Object: ``value_milli``.
    External: ``values_milli`` (every series returned; the HPA sums them). ``error``: the
    metrics API call failed.
    """

    pod_samples: Mapping[str, PodSample] = field(default_factory=dict)
    value_milli: int = 0
    values_milli: tuple[int, ...] = ()
    error: str | None = None


@dataclass(frozen=True)
class Observation:
    """The scale subresource, the selected pods and one reading per ``spec.metrics`` entry."""

    spec_replicas: int
    status_replicas: int
    pods: tuple[PodInfo, ...] = ()
    readings: tuple[MetricReading, ...] = ()


@dataclass(frozen=True)
class MetricStatus:
    metric: MetricSpec
    proposal: Proposal | None
    error: str | None = None


@dataclass(frozen=True)
class ReconcileResult:
    """``desired_replicas`` is written to ``scale.spec.replicas`` iff ``rescale``."""

    desired_replicas: int
    rescale: bool
    reason: str
    metric_desired: int | None
    metrics: tuple[MetricStatus, ...]
    state: HPAState


def tolerances_for(spec: HPASpec, config: ControllerConfig) -> Tolerances:
    """The cluster tolerance, overridden per direction by ``behavior.*.tolerance``."""
    down = up = config.tolerance
    if spec.behavior is not None:
        if spec.behavior.scale_down.tolerance is not None:
            down = spec.behavior.scale_down.tolerance
        if spec.behavior.scale_up.tolerance is not None:
            up = spec.behavior.scale_up.tolerance
    return Tolerances(scale_down=down, scale_up=up)


def _require(target: MetricTarget, wanted: TargetType) -> int:
    value = {
        TargetType.UTILIZATION: target.average_utilization,
        TargetType.AVERAGE_VALUE: target.average_value_milli,
        TargetType.VALUE: target.value_milli,
    }[wanted]
    if value is None:
        raise ReplicaCalcError(f"target type {wanted} needs a value; the spec gives none")
    return value


def compute_metric(
    metric: MetricSpec,
    reading: MetricReading,
    obs: Observation,
    timing: ReadinessTiming,
    tolerances: Tolerances,
) -> Proposal:
    """One metric's proposal (upstream ``computeReplicasForMetric``); raises on error."""
    if reading.error is not None:
        raise ReplicaCalcError(f"unable to get metric {metric.kind}: {reading.error}")
    if isinstance(metric, ResourceMetric):
        if metric.target.type == TargetType.UTILIZATION:
            return resource_utilization_replicas(
                current_replicas=obs.spec_replicas,
                target_utilization=_require(metric.target, TargetType.UTILIZATION),
                resource=metric.name,
                pods=obs.pods,
                samples=reading.pod_samples,
                timing=timing,
                tolerances=tolerances,
            )
        return plain_metric_replicas(
            current_replicas=obs.spec_replicas,
            target_average_milli=_require(metric.target, TargetType.AVERAGE_VALUE),
            pods=obs.pods,
            samples=reading.pod_samples,
            timing=timing,
            tolerances=tolerances,
            resource=metric.name,
        )
    if isinstance(metric, PodsMetric):
        return plain_metric_replicas(
            current_replicas=obs.spec_replicas,
            target_average_milli=_require(metric.target, TargetType.AVERAGE_VALUE),
            pods=obs.pods,
            samples=reading.pod_samples,
            timing=timing,
            tolerances=tolerances,
            metric_name=metric.name,
        )
    if isinstance(metric, ObjectMetric | ExternalMetric):
        if isinstance(metric, ObjectMetric):
            value = reading.value_milli
        else:
            value = sum_external(reading.values_milli, metric.name)
        if metric.target.type == TargetType.VALUE:
            return value_replicas(
                current_replicas=obs.spec_replicas,
                value_milli=value,
                target_value_milli=_require(metric.target, TargetType.VALUE),
                pods=obs.pods,
                tolerances=tolerances,
            )
        return average_value_replicas(
            status_replicas=obs.status_replicas,
            value_milli=value,
            target_average_milli=_require(metric.target, TargetType.AVERAGE_VALUE),
            tolerances=tolerances,
        )
    raise ReplicaCalcError(f"invalid metric source type {metric.kind!r}")


def compute_metrics(
    spec: HPASpec, obs: Observation, now: float, config: ControllerConfig
) -> tuple[int | None, tuple[MetricStatus, ...]]:
    """Max over the metrics' proposals; ``None`` when the controller must not scale: every
    metric failed, or some failed and the valid maximum is below ``spec.replicas``."""
    timing = ReadinessTiming(
        now, config.cpu_initialization_period_s, config.delay_of_initial_readiness_s
    )
    tolerances = tolerances_for(spec, config)
    statuses: list[MetricStatus] = []
    best: int | None = None
    failures = 0
    for i, metric in enumerate(spec.metrics):
        reading = obs.readings[i] if i < len(obs.readings) else MetricReading(error="no reading")
        try:
            proposal = compute_metric(metric, reading, obs, timing, tolerances)
        except ReplicaCalcError as exc:
            failures += 1
            statuses.append(MetricStatus(metric, None, str(exc)))
            continue
        statuses.append(MetricStatus(metric, proposal))
        best = proposal.replicas if best is None else max(best, proposal.replicas)
    if best is None or failures >= len(spec.metrics):
        return None, tuple(statuses)
    if failures and best < obs.spec_replicas:
        return None, tuple(statuses)
    return best, tuple(statuses)


def _normalize(
    spec: HPASpec,
    *,
    current: int,
    metric_desired: int,
    state: HPAState,
    now: float,
    config: ControllerConfig,
) -> tuple[int, str, HPAState]:
    behavior = spec.behavior
    history = state.recommendations or ()
    if behavior is None:
        stabilized, history = stabilize_legacy(
            history, metric_desired, now, config.downscale_stabilization_s
        )
        desired, reason = convert_with_rules(
            current=current,
            desired=stabilized,
            min_replicas=spec.min_replicas,
            max_replicas=spec.max_replicas,
            scale_up_limit_factor=config.scale_up_limit_factor,
            scale_up_limit_minimum=config.scale_up_limit_minimum,
        )
        return desired, reason, replace(state, recommendations=history)
    down_window = behavior.scale_down.stabilization_window_seconds
    up_window = behavior.scale_up.stabilization_window_seconds
    stabilized, history = stabilize_with_behavior(
        history,
        current=current,
        desired=metric_desired,
        up_window_s=up_window or 0,
        down_window_s=config.downscale_stabilization_s if down_window is None else down_window,
        now=now,
    )
    desired, reason = convert_with_behavior_rate(
        current=current,
        desired=stabilized,
        min_replicas=spec.min_replicas,
        max_replicas=spec.max_replicas,
        scale_up=behavior.scale_up,
        scale_down=behavior.scale_down,
        up_events=state.scale_up_events,
        down_events=state.scale_down_events,
        now=now,
    )
    return desired, reason, replace(state, recommendations=history)


def record_scale_event(
    behavior: Behavior | None, state: HPAState, old: int, new: int, now: float
) -> HPAState:
    """After a rescale, remember it for the policies (only when ``behavior`` is set)."""
    if behavior is None or old == new:
        return state
    if new > old:
        events = store_scale_event(state.scale_up_events, behavior.scale_up, new - old, now)
        return replace(state, scale_up_events=events)
    events = store_scale_event(state.scale_down_events, behavior.scale_down, old - new, now)
    return replace(state, scale_down_events=events)


def reconcile(
    spec: HPASpec,
    obs: Observation,
    state: HPAState,
    now: float,
    config: ControllerConfig | None = None,
) -> ReconcileResult:
    """One sync of the HPA: clamp branches, metrics, normalization, scale-event bookkeeping."""
    config = config or ControllerConfig()
    current = obs.spec_replicas
    if state.recommendations is None:
        state = replace(state, recommendations=(Recommendation(current, now),))
    statuses: tuple[MetricStatus, ...] = ()
    metric_desired: int | None = None
    if current == 0 and spec.min_replicas != 0:
        return ReconcileResult(current, False, SCALING_DISABLED, None, (), state)
    if current > spec.max_replicas:
        desired, reason = spec.max_replicas, "TooManyReplicas"
    elif current < spec.min_replicas:
        desired, reason = spec.min_replicas, "TooFewReplicas"
    else:
        metric_desired, statuses = compute_metrics(spec, obs, now, config)
        if metric_desired is None:
            return ReconcileResult(current, False, FAILED_GET_METRICS, None, statuses, state)
        desired, reason, state = _normalize(
            spec,
            current=current,
            metric_desired=metric_desired,
            state=state,
            now=now,
            config=config,
        )
    rescale = desired != current
    if rescale:
        state = record_scale_event(spec.behavior, state, current, desired, now)
    return ReconcileResult(desired, rescale, reason, metric_desired, statuses, state)
