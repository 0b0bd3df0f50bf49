"""Typed autoscaling/v2 HorizontalPodAutoscaler spec, after the API server's defaulting.

These frozen dataclasses are what :mod:`faena.autoscale.manifest` produces from YAML and what
:mod:`faena.autoscale.hpa` consumes. Metric values and targets are integer milli-units, exactly
as upstream feeds them into its arithmetic (``Quantity.MilliValue()``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class TargetType(StrEnum):
    UTILIZATION = "Utilization"
    VALUE = "Value"
    AVERAGE_VALUE = "AverageValue"


class PolicyType(StrEnum):
    PODS = "Pods"
    PERCENT = "Percent"


class SelectPolicy(StrEnum):
    MAX = "Max"
    MIN = "Min"
    DISABLED = "Disabled"


@dataclass(frozen=True)
class MetricTarget:
    """``target``: exactly one of the three values is set, matching ``type``."""

    type: TargetType
    average_utilization: int | None = None
    average_value_milli: int | None = None
    value_milli: int | None = None

    @classmethod
    def utilization(cls, percent: int) -> MetricTarget:
        return cls(TargetType.UTILIZATION, average_utilization=percent)

    @classmethod
    def average_value(cls, milli: int) -> MetricTarget:
        return cls(TargetType.AVERAGE_VALUE, average_value_milli=milli)

    @classmethod
    def value(cls, milli: int) -> MetricTarget:
        return cls(TargetType.VALUE, value_milli=milli)


@dataclass(frozen=True)
class LabelRequirement:
    key: str
    operator: str  # In, NotIn, Exists, DoesNotExist
    values: tuple[str, ...] = ()


@dataclass(frozen=True)
class LabelSelector:
    match_labels: tuple[tuple[str, str], ...] = ()
    match_expressions: tuple[LabelRequirement, ...] = ()

    def matches(self, labels: dict[str, str]) -> bool:
        if any(labels.get(k) != v for k, v in self.match_labels):
            return False
        for req in self.match_expressions:
            present = req.key in labels
            if req.operator == "In" and not (present and labels[req.key] in req.values):
                return False
            if req.operator == "NotIn" and present and labels[req.key] in req.values:
                return False
            if req.operator == "Exists" and not present:
                return False
            if req.operator == "DoesNotExist" and present:
                return False
        return True


@dataclass(frozen=True)
class ObjectReference:
    kind: str
    name: str
    api_version: str = ""


@dataclass(frozen=True)
class ResourceMetric:
    """``type: Resource``: cpu or memory of the pods, Utilization or AverageValue."""

    name: str
    target: MetricTarget

    @property
    def kind(self) -> str:
        return "Resource"


@dataclass(frozen=True)
class PodsMetric:
    """``type: Pods``: a custom metric reported by every pod, averaged over the pods."""

    name: str
    target: MetricTarget
    selector: LabelSelector | None = None

    @property
    def kind(self) -> str:
        return "Pods"


@dataclass(frozen=True)
class ObjectMetric:
    """``type: Object``: one value describing another object (an Ingress, a queue)."""

    name: str
    target: MetricTarget
    described_object: ObjectReference = field(default_factory=lambda: ObjectReference("", ""))
    selector: LabelSelector | None = None

    @property
    def kind(self) -> str:
        return "Object"


@dataclass(frozen=True)
class ExternalMetric:
    """``type: External``: samples from outside the cluster; the HPA sums them."""

    name: str
    target: MetricTarget
    selector: LabelSelector | None = None

    @property
    def kind(self) -> str:
        return "External"


@dataclass(frozen=True)
class UnsupportedMetric:
    """A metric source faena does not compute (upstream: "invalid metric source type").

    Never produced by the manifest parser (it rejects unknown types); it exists so a reconcile
    can reproduce the controller's handling of a metric it cannot evaluate.
    """

    type_name: str

    @property
    def kind(self) -> str:
        return self.type_name


MetricSpec = ResourceMetric | PodsMetric | ObjectMetric | ExternalMetric | UnsupportedMetric


@dataclass(frozen=True)
class ScalingPolicy:
    type: PolicyType
    value: int
    period_seconds: int


@dataclass(frozen=True)
class ScalingRules:
    """One direction of ``behavior``.

    ``stabilization_window_seconds`` is ``None`` when unset: the API server leaves scale-down
    unset and the controller fills it from ``--horizontal-pod-autoscaler-downscale-stabilization``
    (300 s) before use. ``tolerance`` (HPAConfigurableTolerance) overrides the cluster tolerance
    for that direction when set.
    """

    select_policy: SelectPolicy
    policies: tuple[ScalingPolicy, ...]
    stabilization_window_seconds: int | None = None
    tolerance: float | None = None

    @property
    def longest_period_seconds(self) -> int:
        return max((p.period_seconds for p in self.policies), default=0)


def default_scale_up_rules() -> ScalingRules:
    """scaleUp defaults: no stabilization, +4 pods or +100 % per 15 s, whichever is larger."""
    return ScalingRules(
        select_policy=SelectPolicy.MAX,
        policies=(
            ScalingPolicy(PolicyType.PODS, 4, 15),
            ScalingPolicy(PolicyType.PERCENT, 100, 15),
        ),
        stabilization_window_seconds=0,
    )


def default_scale_down_rules() -> ScalingRules:
    """scaleDown defaults: -100 % per 15 s; stabilization left to the controller flag (300 s)."""
    return ScalingRules(
        select_policy=SelectPolicy.MAX,
        policies=(ScalingPolicy(PolicyType.PERCENT, 100, 15),),
        stabilization_window_seconds=None,
    )


@dataclass(frozen=True)
class Behavior:
    scale_up: ScalingRules = field(default_factory=default_scale_up_rules)
    scale_down: ScalingRules = field(default_factory=default_scale_down_rules)


@dataclass(frozen=True)
class HPASpec:
    """``spec`` of an HPA; ``behavior`` is ``None`` when omitted (the legacy path)."""

    max_replicas: int
    metrics: tuple[MetricSpec, ...]
    min_replicas: int = 1
    behavior: Behavior | None = None
    scale_target: ObjectReference = field(default_factory=lambda: ObjectReference("", ""))


@dataclass(frozen=True)
class HorizontalPodAutoscaler:
    name: str
    namespace: str
    spec: HPASpec
