"""Per-metric replica calculation of the HPA (upstream ``replica_calculator.go``), pure.

Every function takes the observed pods and metric samples plus the injected "now" and returns
one proposal, or raises :class:`ReplicaCalcError` the way upstream returns an error. Integer
arithmetic follows upstream exactly: milli-values, truncated integer percent, ``//`` averages,
``ceil`` on float64 ratios, int32 saturation.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from faena.autoscale.errors import ReplicaCalcError

INT32_MAX = 2**31 - 1
INT64_MAX = 2**63 - 1


class PodPhase(StrEnum):
    PENDING = "Pending"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    UNKNOWN = "Unknown"


@dataclass(frozen=True)
class PodInfo:
    """What the HPA reads from one pod matched by the target's selector.

    ``ready`` is ``None`` when the pod has no Ready condition; ``start_time`` is ``None`` when
    the pod has no start time. Times are seconds on the injected clock (0 = long ago).
    ``requests_milli`` maps a resource name to the sum of the containers' requests, ``None``
    when a container has no request for it.
    """

    name: str
    phase: PodPhase = PodPhase.RUNNING
    ready: bool | None = True
    deleting: bool = False
    start_time: float | None = 0.0
    ready_transition_time: float = 0.0
    requests_milli: tuple[tuple[str, int | None], ...] = ()

    def request(self, resource: str) -> int | None:
        return dict(self.requests_milli).get(resource)


@dataclass(frozen=True)
class PodSample:
    """One metrics-API sample for a pod: the value and the window it was collected over."""

    value_milli: int
    timestamp: float = 0.0
    window_s: float = 0.0


@dataclass(frozen=True)
class Tolerances:
    """``within(r) := (1 - scale_down) <= r <= (1 + scale_up)``, inclusive."""

    scale_down: float = 0.1
    scale_up: float = 0.1

    def within(self, ratio: float) -> bool:
        return (1.0 - self.scale_down) <= ratio <= (1.0 + self.scale_up)


@dataclass(frozen=True)
class ReadinessTiming:
    """The injected "now" plus the controller's CPU readiness settings."""

    now: float
    cpu_initialization_period_s: float = 300.0
    delay_of_initial_readiness_s: float = 30.0


@dataclass(frozen=True)
class PodGroups:
    ready_count: int
    unready: frozenset[str] = field(default_factory=frozenset)
    missing: frozenset[str] = field(default_factory=frozenset)
    ignored: frozenset[str] = field(default_factory=frozenset)


@dataclass(frozen=True)
class Proposal:
    """One metric's answer. ``usage`` is what HPA status reports: integer percent for
    Utilization targets, otherwise milli-units. ``raw_average_milli`` only for Utilization."""

    replicas: int
    usage: int
    raw_average_milli: int | None = None


def ceil_int32(value: float) -> int:
    """``int32(math.Ceil(value))`` with upstream's saturation on overflow."""
    if math.isnan(value):
        return 0
    if value >= INT32_MAX:
        return INT32_MAX
    return math.ceil(value)


def _cpu_unready(pod: PodInfo, sample: PodSample, timing: ReadinessTiming) -> bool:
    if pod.ready is None or pod.start_time is None:
        return True
    if timing.now < pod.start_time + timing.cpu_initialization_period_s:
        # Inside the initialization period: only a sample collected entirely after the pod
        # became ready counts.
        return pod.ready is False or (
            sample.timestamp < pod.ready_transition_time + sample.window_s
        )
    # After it: ignore only pods that have been unready since start-up.
    return pod.ready is False and (
        pod.ready_transition_time < pod.start_time + timing.delay_of_initial_readiness_s
    )


def group_pods(
    pods: Sequence[PodInfo],
    samples: Mapping[str, PodSample],
    resource: str | None,
    timing: ReadinessTiming,
) -> PodGroups:
    """Classify pods (upstream ``groupPods``); readiness timing applies to ``cpu`` only."""
    ready = 0
    unready: set[str] = set()
    missing: set[str] = set()
    ignored: set[str] = set()
    for pod in pods:
        if pod.deleting or pod.phase == PodPhase.FAILED:
            ignored.add(pod.name)
            continue
        if pod.phase == PodPhase.PENDING:
            unready.add(pod.name)
            continue
        sample = samples.get(pod.name)
        if sample is None:
            missing.add(pod.name)
            continue
        if resource == "cpu" and _cpu_unready(pod, sample, timing):
            unready.add(pod.name)
            continue
        ready += 1
    return PodGroups(ready, frozenset(unready), frozenset(missing), frozenset(ignored))


def _replicas_with_fill_in(
    *,
    current: int,
    ratio: float,
    groups: PodGroups,
    values: dict[str, int],
    missing_value_on_scale_down: Callable[[str], int],
    recompute: Callable[[dict[str, int]], float],
    tolerances: Tolerances,
) -> int:
    """Steps 5-8 of spec 3.3: direct answer, or pessimistic fill-in of missing/unready pods."""
    scale_up_with_unready = bool(groups.unready) and ratio > 1.0
    if not scale_up_with_unready and not groups.missing:
        if tolerances.within(ratio):
            return current
        return ceil_int32(ratio * groups.ready_count)
    filled = dict(values)
    if ratio < 1.0:
        for name in groups.missing:
            filled[name] = missing_value_on_scale_down(name)
    elif ratio > 1.0:
        for name in groups.missing:
            filled[name] = 0
    if scale_up_with_unready:
        for name in groups.unready:
            filled[name] = 0
    new_ratio = recompute(filled)
    flipped = (ratio < 1.0 < new_ratio) or (ratio > 1.0 > new_ratio)
    if tolerances.within(new_ratio) or flipped:
        return current
    proposal = ceil_int32(new_ratio * len(filled))
    if (new_ratio < 1.0 and proposal > current) or (new_ratio > 1.0 and proposal < current):
        return current
    return proposal


def _utilization(values: Mapping[str, int], requests: Mapping[str, int]) -> tuple[int, int]:
    """(integer percent, raw average) over samples whose pod has a request."""
    usage_total = 0
    request_total = 0
    count = 0
    for name, value in values.items():
        request = requests.get(name)
        if request is None:
            continue
        usage_total += value
        request_total += request
        count += 1
    if request_total == 0:
        raise ReplicaCalcError("no metrics returned matched known pods")
    return (usage_total * 100) // request_total, usage_total // count


def _pod_requests(pods: Sequence[PodInfo], resource: str) -> dict[str, int]:
    requests: dict[str, int] = {}
    for pod in pods:
        request = pod.request(resource)
        if request is None:
            raise ReplicaCalcError(
                f"missing request for {resource} in a container of pod {pod.name}; "
                f"set resources.requests.{resource} on every container"
            )
        requests[pod.name] = request
    return requests


def _usable_samples(
    pods: Sequence[PodInfo],
    samples: Mapping[str, PodSample],
    resource: str | None,
    timing: ReadinessTiming,
) -> tuple[PodGroups, dict[str, int]]:
    if not pods:
        raise ReplicaCalcError("no pods returned by selector while calculating replica count")
    groups = group_pods(pods, samples, resource, timing)
    dropped = groups.unready | groups.ignored
    values = {name: s.value_milli for name, s in samples.items() if name not in dropped}
    return groups, values


def resource_utilization_replicas(
    *,
    current_replicas: int,
    target_utilization: int,
    resource: str,
    pods: Sequence[PodInfo],
    samples: Mapping[str, PodSample],
    timing: ReadinessTiming,
    tolerances: Tolerances,
) -> Proposal:
    """Resource metric with a ``Utilization`` target (upstream ``GetResourceReplicas``)."""
    if not samples:
        raise ReplicaCalcError(
            f"unable to get metrics for resource {resource}: "
            "no metrics returned from resource metrics API"
        )
    groups, values = _usable_samples(pods, samples, resource, timing)
    requests = _pod_requests(pods, resource)
    if not values:
        raise ReplicaCalcError("did not receive metrics for targeted pods (pods might be unready)")
    utilization, raw_average = _utilization(values, requests)
    ratio = utilization / target_utilization

    def recompute(filled: dict[str, int]) -> float:
        return _utilization(filled, requests)[0] / target_utilization

    def missing_value(name: str) -> int:
        return requests[name] * max(100, target_utilization) // 100

    replicas = _replicas_with_fill_in(
        current=current_replicas,
        ratio=ratio,
        groups=groups,
        values=values,
        missing_value_on_scale_down=missing_value,
        recompute=recompute,
        tolerances=tolerances,
    )
    return Proposal(replicas, utilization, raw_average)


def plain_metric_replicas(
    *,
    current_replicas: int,
    target_average_milli: int,
    pods: Sequence[PodInfo],
    samples: Mapping[str, PodSample],
    timing: ReadinessTiming,
    tolerances: Tolerances,
    resource: str | None = None,
    metric_name: str = "",
) -> Proposal:
    """Pods metric (``GetMetricReplicas``), or Resource ``AverageValue`` when ``resource`` is
    given (``GetRawResourceReplicas``): a plain average per pod against the target."""
    if not samples:
        source = f"resource {resource}" if resource else f"metric {metric_name}"
        api = "resource" if resource else "custom"
        raise ReplicaCalcError(
            f"unable to get {source}: no metrics returned from {api} metrics API"
        )
    groups, values = _usable_samples(pods, samples, resource, timing)
    if not values:
        raise ReplicaCalcError("did not receive metrics for targeted pods (pods might be unready)")
    usage = sum(values.values()) // len(values)
    ratio = usage / target_average_milli

    def recompute(filled: dict[str, int]) -> float:
        return (sum(filled.values()) // len(filled)) / target_average_milli

    replicas = _replicas_with_fill_in(
        current=current_replicas,
        ratio=ratio,
        groups=groups,
        values=values,
        missing_value_on_scale_down=lambda _name: target_average_milli,
        recompute=recompute,
        tolerances=tolerances,
    )
    return Proposal(replicas, usage)


def ready_pod_count(pods: Sequence[PodInfo]) -> int:
    """Pods with phase Running and Ready=True (no CPU timing rules, deleting pods count)."""
    if not pods:
        raise ReplicaCalcError(
            "unable to calculate ready pods: "
            "no pods returned by selector while calculating replica count"
        )
    return sum(1 for p in pods if p.phase == PodPhase.RUNNING and p.ready is True)


def value_replicas(
    *,
    current_replicas: int,
    value_milli: int,
    target_value_milli: int,
    pods: Sequence[PodInfo],
    tolerances: Tolerances,
) -> Proposal:
    """Object or External metric with a ``Value`` target: the ratio times the ready pods."""
    ratio = value_milli / target_value_milli
    if current_replicas == 0:
        return Proposal(ceil_int32(ratio), value_milli)
    if tolerances.within(ratio):
        return Proposal(current_replicas, value_milli)
    return Proposal(ceil_int32(ratio * ready_pod_count(pods)), value_milli)


def average_value_replicas(
    *,
    status_replicas: int,
    value_milli: int,
    target_average_milli: int,
    tolerances: Tolerances,
) -> Proposal:
    """Object or External metric with an ``AverageValue`` target: ``ceil(value / target)``
    unless ``value / (target * status_replicas)`` is within tolerance.

    With ``status_replicas == 0`` the ratio is never within tolerance (upstream: +Inf or NaN);
    the usage reported is then the value itself.
    """
    replicas = status_replicas
    if status_replicas == 0:
        within = False
    else:
        within = tolerances.within(
            value_milli / (float(target_average_milli) * float(status_replicas))
        )
    if not within:
        replicas = ceil_int32(value_milli / target_average_milli)
    usage = math.ceil(value_milli / status_replicas) if status_replicas else value_milli
    return Proposal(replicas, usage)


def sum_external(values_milli: Sequence[int], metric_name: str = "") -> int:
    """The HPA sums every sample of an External metric (saturating at int64 max)."""
    if not values_milli:
        raise ReplicaCalcError(
            f"unable to get external metric {metric_name}: "
            "no metrics returned from external metrics API"
        )
    return min(sum(values_milli), INT64_MAX)
