"""Replay the upstream HPA test cases (schema: ``docs/hpa-spec.md`` section 0) through faena.

``replay(case)`` feeds one case's ``input`` to the matching faena function and returns a dict
with exactly the keys of the case's ``expected``, so a test can compare them for equality.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from faena.autoscale import hpa_behavior as hb
from faena.autoscale.errors import ReplicaCalcError
from faena.autoscale.hpa import ControllerConfig, HPAState, MetricReading, Observation, reconcile
from faena.autoscale.hpa_calc import (
    PodInfo,
    PodPhase,
    PodSample,
    Proposal,
    ReadinessTiming,
    Tolerances,
    average_value_replicas,
    group_pods,
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
    PolicyType,
    ResourceMetric,
    ScalingPolicy,
    ScalingRules,
    SelectPolicy,
    TargetType,
    UnsupportedMetric,
)

Case = Mapping[str, Any]


# ------------------------------------------------------------------------ input builders


def _pod(raw: Mapping[str, Any], resource: str = "cpu") -> PodInfo:
    ready = raw.get("ready")
    transition = raw.get("ready_transition_time_s")
    return PodInfo(
        name=raw["name"],
        phase=PodPhase(raw.get("phase", "Running")),
        ready=None if ready is None else ready == "True",
        deleting=bool(raw.get("deleting", False)),
        start_time=raw.get("start_time_s"),
        ready_transition_time=0.0 if transition is None else float(transition),
        requests_milli=((resource, raw.get("request_milli")),),
    )


def _pods(raw: Case, resource: str = "cpu") -> tuple[PodInfo, ...]:
    return tuple(_pod(p, resource) for p in raw.get("pods") or ())


def _samples(raw: Any) -> dict[str, PodSample]:
    return {
        s["pod"]: PodSample(s["value_milli"], float(s["timestamp_s"]), float(s["window_s"]))
        for s in raw or ()
    }


def _target(raw: Mapping[str, Any] | None) -> MetricTarget:
    if raw is None:
        return MetricTarget(TargetType.VALUE)
    return MetricTarget(
        TargetType(raw["type"]),
        average_utilization=raw.get("average_utilization"),
        average_value_milli=raw.get("average_value_milli"),
        value_milli=raw.get("value_milli"),
    )


def _tolerances(raw: Mapping[str, Any] | None) -> Tolerances:
    raw = raw or {}
    return Tolerances(raw.get("scale_down", 0.1), raw.get("scale_up", 0.1))


def _timing(inp: Case) -> ReadinessTiming:
    return ReadinessTiming(
        float(inp["now_s"]),
        float(inp.get("cpu_initialization_period_s", 300)),
        float(inp.get("delay_of_initial_readiness_s", 30)),
    )


def _rules(raw: Mapping[str, Any]) -> ScalingRules:
    return ScalingRules(
        select_policy=SelectPolicy(raw.get("select_policy") or "Max"),
        policies=tuple(
            ScalingPolicy(PolicyType(p["type"]), p["value"], p["period_s"])
            for p in raw.get("policies") or ()
        ),
        stabilization_window_seconds=raw.get("stabilization_window_s"),
    )


def _events(raw: Any, now: float) -> tuple[hb.ScaleEvent, ...]:
    return tuple(
        hb.ScaleEvent(e["replica_change"], now - float(e["age_s"]), bool(e.get("outdated", False)))
        for e in raw or ()
    )


def _recommendations(raw: Any, now: float) -> tuple[hb.Recommendation, ...]:
    return tuple(hb.Recommendation(r["replicas"], now - float(r["age_s"])) for r in raw or ())


# -------------------------------------------------------------------------------- calc


def _calc_proposal(inp: Case) -> Proposal:
    function = inp["function"]
    target = _target(inp.get("target"))
    tolerances = _tolerances(inp.get("tolerance"))
    current = int(inp.get("current_replicas", 0))
    if function == "GetResourceReplicas":
        return resource_utilization_replicas(
            current_replicas=current,
            target_utilization=target.average_utilization or 0,
            resource="cpu",
            pods=_pods(inp),
            samples=_samples(inp.get("pod_metrics")),
            timing=_timing(inp),
            tolerances=tolerances,
        )
    if function == "GetMetricReplicas":
        return plain_metric_replicas(
            current_replicas=current,
            target_average_milli=target.average_value_milli or 0,
            pods=_pods(inp),
            samples=_samples(inp.get("pod_metrics")),
            timing=_timing(inp),
            tolerances=tolerances,
        )
    if function in ("GetObjectMetricReplicas", "GetExternalMetricReplicas"):
        value = (
            inp["object_value_milli"]
            if function == "GetObjectMetricReplicas"
            else sum_external(inp["external_values_milli"])
        )
        return value_replicas(
            current_replicas=current,
            value_milli=value,
            target_value_milli=target.value_milli or 0,
            pods=_pods(inp),
            tolerances=tolerances,
        )
    if function in ("GetObjectPerPodMetricReplicas", "GetExternalPerPodMetricReplicas"):
        value = (
            inp["object_value_milli"]
            if function == "GetObjectPerPodMetricReplicas"
            else sum_external(inp["external_values_milli"])
        )
        return average_value_replicas(
            status_replicas=current,
            value_milli=value,
            target_average_milli=target.average_value_milli or 0,
            tolerances=tolerances,
        )
    raise ValueError(f"unknown calc function {function!r}")


def _replay_calc(inp: Case, expected: Case) -> dict[str, Any]:
    if inp["function"] == "groupPods":
        resource = inp.get("resource") or None
        groups = group_pods(
            _pods(inp, resource or "cpu"), _samples(inp.get("pod_metrics")), resource, _timing(inp)
        )
        return {
            "ready_pod_count": groups.ready_count,
            "unready": sorted(groups.unready),
            "missing": sorted(groups.missing),
            "ignored": sorted(groups.ignored),
        }
    try:
        proposal = _calc_proposal(inp)
    except ReplicaCalcError as exc:
        message = str(exc)
        want = expected.get("error_contains")
        return {"error_contains": want if want and want in message else message}
    result: dict[str, Any] = {"replicas": proposal.replicas}
    if inp["function"] == "GetResourceReplicas":
        result["utilization_percent"] = proposal.usage
        result["raw_average_milli"] = proposal.raw_average_milli
    else:
        result["usage_milli"] = proposal.usage
    return result


# ---------------------------------------------------------------------------- behavior


def _behavior_rate(inp: Case, now: float) -> dict[str, Any]:
    desired, reason = hb.convert_with_behavior_rate(
        current=inp["current_replicas"],
        desired=inp["desired_replicas"],
        min_replicas=inp["min_replicas"],
        max_replicas=inp["max_replicas"],
        scale_up=_rules(inp["scale_up"]),
        scale_down=_rules(inp["scale_down"]),
        up_events=_events(inp.get("scale_up_events"), now),
        down_events=_events(inp.get("scale_down_events"), now),
        now=now,
    )
    return {"desired_replicas": desired, "condition_reason": reason}


def _stabilize_with_behavior(inp: Case, now: float) -> dict[str, Any]:
    stabilized, history = hb.stabilize_with_behavior(
        _recommendations(inp.get("recommendations"), now),
        current=inp["current_replicas"],
        desired=inp["desired_replicas"],
        up_window_s=inp["scale_up_stabilization_window_s"],
        down_window_s=inp["scale_down_stabilization_window_s"],
        now=now,
    )
    return {
        "stabilized_replicas": stabilized,
        "recommendations_after": [r.replicas for r in history],
    }


def _stabilize_legacy(inp: Case, now: float) -> dict[str, Any]:
    stabilized, history = hb.stabilize_legacy(
        _recommendations(inp.get("recommendations"), now),
        inp["desired_replicas"],
        now,
        inp["downscale_stabilization_window_s"],
    )
    return {"stabilized_replicas": stabilized, "recommendation_log_length": len(history)}


def _convert_with_rules(inp: Case, now: float) -> dict[str, Any]:
    desired, reason = hb.convert_with_rules(
        current=inp["current_replicas"],
        desired=inp["desired_replicas"],
        min_replicas=inp["min_replicas"],
        max_replicas=inp["max_replicas"],
        scale_up_limit_factor=inp.get("scale_up_limit_factor", 2.0),
        scale_up_limit_minimum=inp.get("scale_up_limit_minimum", 4.0),
    )
    return {"desired_replicas": desired, "condition_reason": reason}


def _limit(inp: Case, now: float) -> dict[str, Any]:
    fn = (
        hb.scale_up_limit
        if inp["op"] == "calculateScaleUpLimitWithScalingRules"
        else hb.scale_down_limit
    )
    limit = fn(
        inp["current_replicas"],
        _events(inp.get("scale_up_events"), now),
        _events(inp.get("scale_down_events"), now),
        _rules(inp["rules"]),
        now,
    )
    return {"limit": limit}


def _store_event(inp: Case, now: float) -> dict[str, Any]:
    prev = _events(inp.get("prev_events"), now)
    before = hb.replicas_change_in_period(60, prev, now)
    raw_rules = inp.get("behavior_rules")
    if raw_rules is None:
        after = prev  # no behavior: nothing is stored and nothing is touched
    else:
        rules_raw = raw_rules.get("scale_up", raw_rules)
        after = hb.store_scale_event(prev, _rules(rules_raw), inp["replica_change"], now)
    return {
        "replicas_change_last_60s_before_store": before,
        "events_after": [
            {"replica_change": e.replica_change, "outdated": e.outdated} for e in after
        ],
    }


_BEHAVIOR_OPS: dict[str, Callable[[Case, float], dict[str, Any]]] = {
    "convertDesiredReplicasWithBehaviorRate": _behavior_rate,
    "stabilizeRecommendationWithBehaviors": _stabilize_with_behavior,
    "stabilizeRecommendation": _stabilize_legacy,
    "convertDesiredReplicasWithRules": _convert_with_rules,
    "calculateScaleUpLimitWithScalingRules": _limit,
    "calculateScaleDownLimitWithBehaviors": _limit,
    "storeScaleEvent": _store_event,
}


# -------------------------------------------------------------------------- controller


def _controller_metric(raw: Mapping[str, Any]) -> tuple[MetricSpec, MetricReading]:
    kind = raw.get("type")
    error = "the metrics API call failed" if raw.get("fetch_error") else None
    target = _target(raw.get("target"))
    if kind == "Resource":
        metric: MetricSpec = ResourceMetric(raw.get("name", "cpu"), target)
        return metric, MetricReading(pod_samples=_samples(raw.get("pod_metrics")), error=error)
    if kind == "Pods":
        metric = PodsMetric(raw.get("name", "qps"), target)
        return metric, MetricReading(pod_samples=_samples(raw.get("pod_metrics")), error=error)
    if kind == "Object":
        metric = ObjectMetric(raw.get("name", "qps"), target)
        return metric, MetricReading(value_milli=raw.get("value_milli", 0), error=error)
    if kind == "External":
        metric = ExternalMetric(raw.get("name", "qps"), target)
        values = tuple(raw.get("values_milli") or ())
        return metric, MetricReading(values_milli=values, error=error)
    return UnsupportedMetric(str(kind)), MetricReading(error=error)


def _replay_controller(inp: Case) -> dict[str, Any]:
    now = float(inp["now_s"])
    pairs = [_controller_metric(m) for m in inp.get("metrics") or ()]
    behavior = None
    if inp.get("behavior") is not None:
        behavior = Behavior(
            scale_up=_rules(inp["behavior"]["scale_up"]),
            scale_down=_rules(inp["behavior"]["scale_down"]),
        )
    spec = HPASpec(
        max_replicas=inp["max_replicas"],
        min_replicas=inp["min_replicas"],
        metrics=tuple(m for m, _ in pairs),
        behavior=behavior,
    )
    tolerance = inp.get("tolerance") or {}
    config = ControllerConfig(
        tolerance=tolerance.get("scale_up", 0.1),
        cpu_initialization_period_s=inp.get("cpu_initialization_period_s", 300),
        delay_of_initial_readiness_s=inp.get("delay_of_initial_readiness_s", 30),
        downscale_stabilization_s=inp.get("downscale_stabilization_window_s", 300),
        scale_up_limit_factor=inp.get("legacy_scale_up_limit_factor", 2.0),
        scale_up_limit_minimum=inp.get("legacy_scale_up_limit_minimum", 4.0),
    )
    if tolerance.get("scale_down", config.tolerance) != config.tolerance:
        raise ValueError("controller cases with per-direction cluster tolerances are not supported")
    history = inp.get("recommendation_history")
    state = HPAState(
        recommendations=None if history is None else _recommendations(history, now),
        scale_up_events=_events(inp.get("scale_up_events"), now),
        scale_down_events=_events(inp.get("scale_down_events"), now),
    )
    obs = Observation(
        spec_replicas=inp["spec_replicas"],
        status_replicas=inp.get("status_replicas", inp["spec_replicas"]),
        pods=_pods(inp),
        readings=tuple(r for _, r in pairs),
    )
    result = reconcile(spec, obs, state, now, config)
    return {"desired_replicas": result.desired_replicas}


def replay(case: Case) -> dict[str, Any]:
    """Run one case; return a dict with the keys of ``case["expected"]``."""
    kind = case["kind"]
    inp = case["input"]
    expected = case.get("expected", {})
    if kind == "calc":
        out = _replay_calc(inp, expected)
    elif kind == "behavior":
        out = _BEHAVIOR_OPS[inp["op"]](inp, float(inp.get("now_s", 10000)))
    elif kind == "controller":
        out = _replay_controller(inp)
    else:
        raise ValueError(f"unknown case kind {kind!r}; expected calc, behavior or controller")
    return {key: out.get(key) for key in expected}
