"""The autoscaler's decisions, pure: an HPA manifest, a signals snapshot and ``now`` in, a
:class:`Decision` with its reason out.

:class:`Autoscaler` runs :func:`faena.autoscale.hpa.reconcile` (the same code as
``faena simulate``) and keeps the controller's memory (recommendations, its own scale
events); :class:`faena.autoscale.supervisor.Supervisor` applies its decisions to processes.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from faena.autoscale.hpa import ControllerConfig, HPAState, MetricStatus, reconcile
from faena.autoscale.hpa_behavior import (
    SCALE_DOWN_LIMIT,
    SCALE_UP_LIMIT,
    scale_down_limit,
    scale_up_limit,
)
from faena.autoscale.quantity import format_milli
from faena.autoscale.signals import DEFAULT_REQUESTS, Requests, Signals, observe
from faena.autoscale.spec import (
    HPASpec,
    MetricTarget,
    PolicyType,
    ScalingRules,
    SelectPolicy,
    TargetType,
)


def target_text(target: MetricTarget) -> str:
    """A metric's target as ``kubectl get hpa`` shows it: ``80%``, ``10``, ``250m``."""
    if target.type == TargetType.UTILIZATION:
        return f"{target.average_utilization}%"
    milli = target.average_value_milli if target.type == TargetType.AVERAGE_VALUE else None
    value = milli if milli is not None else target.value_milli
    return format_milli(value or 0)


@dataclass(frozen=True)
class MetricValue:
    """One metric's line in a decision: its current value as the HPA reports it, and its
    proposal (or the error that kept it from proposing)."""

    metric: str
    current: str | None
    proposal: int | None
    error: str | None = None
    target: str | None = None

    @classmethod
    def of(cls, status: MetricStatus) -> MetricValue:
        m = status.metric
        label = f"{m.kind}/{getattr(m, 'name', '')}"
        target = getattr(m, "target", None)
        wanted = target_text(target) if isinstance(target, MetricTarget) else None
        if status.proposal is None:
            return cls(label, None, None, status.error, wanted)
        usage = status.proposal.usage
        shown = (
            f"{usage}%"
            if target is not None and target.type == TargetType.UTILIZATION
            else format_milli(usage)
        )
        return cls(label, shown, status.proposal.replicas, target=wanted)

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}


@dataclass(frozen=True)
class Decision:
    """One sync: ``current`` -> ``desired`` (equal when nothing changes), the combined metric
    proposal before normalization, the reason and, when a policy or a stabilization window
    held the count back, which one."""

    at: float
    current: int
    desired: int
    reason: str
    metric_desired: int | None
    metrics: tuple[MetricValue, ...] = ()
    limited_by: str | None = None

    @property
    def rescale(self) -> bool:
        return self.desired != self.current


def _policy_text(rules: ScalingRules, index: int) -> str:
    p = rules.policies[index]
    unit = "%" if p.type == PolicyType.PERCENT else ""
    return f"{p.type.value} {p.value}{unit} per {p.period_seconds}s"


def _limiting_policy(
    spec: HPASpec, before: HPAState, decision: Decision, config: ControllerConfig
) -> str | None:
    """Name the policy behind a ScaleUpLimit/ScaleDownLimit, or the stabilization window."""
    behavior = spec.behavior
    if behavior is None:
        if decision.reason == SCALE_UP_LIMIT:
            return (
                f"legacy rule: at most max({config.scale_up_limit_factor:g} x current, "
                f"{config.scale_up_limit_minimum:g}) per sync"
            )
        return None
    if decision.reason in (SCALE_UP_LIMIT, SCALE_DOWN_LIMIT):
        up = decision.reason == SCALE_UP_LIMIT
        rules = behavior.scale_up if up else behavior.scale_down
        if rules.select_policy == SelectPolicy.DISABLED:
            return f"scale{'Up' if up else 'Down'}.selectPolicy Disabled"
        limit_of = scale_up_limit if up else scale_down_limit
        for i, policy in enumerate(rules.policies):
            single = replace(rules, select_policy=SelectPolicy.MAX, policies=(policy,))
            limit = limit_of(
                decision.current,
                before.scale_up_events,
                before.scale_down_events,
                single,
                decision.at,
            )
            if limit == decision.desired:
                return f"scale{'Up' if up else 'Down'} policy {_policy_text(rules, i)}"
        return f"scale{'Up' if up else 'Down'} policies (no change allowed in their periods)"
    wanted = decision.metric_desired
    if wanted is None or decision.desired == max(spec.min_replicas, min(wanted, spec.max_replicas)):
        return None
    if wanted < decision.desired:
        window = behavior.scale_down.stabilization_window_seconds
        if window is None:
            window = int(config.downscale_stabilization_s)
        return f"scaleDown stabilization window {window}s"
    return f"scaleUp stabilization window {behavior.scale_up.stabilization_window_seconds}s"


class Autoscaler:
    """The HPA controller for one set of local workers (pure: ``now`` is passed in).

    ``replicas`` plays ``scale.spec.replicas``: the count the supervisor maintains.
    """

    def __init__(
        self,
        spec: HPASpec,
        *,
        replicas: int,
        requests: Requests = DEFAULT_REQUESTS,
        config: ControllerConfig | None = None,
    ) -> None:
        self.spec = spec
        self.replicas = replicas
        self.requests = requests
        self.config = config or ControllerConfig()
        self.state = HPAState()

    def decide(self, signals: Signals, now: float) -> Decision:
        obs = observe(self.spec, self.replicas, signals, self.requests)
        before = self.state
        result = reconcile(self.spec, obs, before, now, self.config)
        self.state = result.state
        decision = Decision(
            at=now,
            current=self.replicas,
            desired=result.desired_replicas if result.rescale else self.replicas,
            reason=result.reason,
            metric_desired=result.metric_desired,
            metrics=tuple(MetricValue.of(s) for s in result.metrics),
        )
        decision = replace(
            decision, limited_by=_limiting_policy(self.spec, before, decision, self.config)
        )
        self.replicas = decision.desired
        return decision
