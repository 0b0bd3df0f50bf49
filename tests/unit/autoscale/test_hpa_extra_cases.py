"""More upstream cases, hand-transcribed from kubernetes/kubernetes
``pkg/controller/podautoscaler/replica_calculator_test.go`` and ``horizontal_test.go`` in the
schema of ``docs/hpa-spec.md`` section 0, replayed like the sample.

Fixture conventions (as upstream): pods ``test-pod-<i>``, Running and Ready since time 0,
two containers per pod in the calculator tests (per-container request/level doubled here), one
sample per level (extra levels are superfluous pods), now = 10000.
"""

from __future__ import annotations

from typing import Any

import pytest

from faena.autoscale.conformance import replay

NOW = 10000
HOT = NOW  # hotCPUCreationTime()
COOL = NOW - 180  # coolCPUCreationTime()


def _pods(
    requests: list[int | None],
    ready: list[str] | None = None,
    start: list[int] | None = None,
    phase: list[str] | None = None,
    deleting: list[bool] | None = None,
    transition_at_start: bool = False,
) -> list[dict[str, Any]]:
    return [
        {
            "name": f"test-pod-{i}",
            "phase": (phase or ["Running"] * len(requests))[i],
            "ready": (ready or ["True"] * len(requests))[i],
            "deleting": (deleting or [False] * len(requests))[i],
            "start_time_s": (start or [0] * len(requests))[i],
            "ready_transition_time_s": (start or [0] * len(requests))[i]
            if transition_at_start
            else 0,
            "request_milli": req,
        }
        for i, req in enumerate(requests)
    ]


def _samples(levels: list[int], ts: int = 0) -> list[dict[str, Any]]:
    return [
        {"pod": f"test-pod-{i}", "value_milli": v, "timestamp_s": ts, "window_s": 60}
        for i, v in enumerate(levels)
    ]


def _calc(function: str, target: dict[str, Any], current: int, **extra: Any) -> dict[str, Any]:
    base = {
        "function": function,
        "current_replicas": current,
        "target": target,
        "tolerance": {"scale_down": 0.1, "scale_up": 0.1},
        "now_s": NOW,
        "cpu_initialization_period_s": 120,
        "delay_of_initial_readiness_s": 10,
    }
    base.update(extra)
    return base


def _util(n: int) -> dict[str, Any]:
    return {"type": "Utilization", "average_utilization": n}


def _avg(n: int) -> dict[str, Any]:
    return {"type": "AverageValue", "average_value_milli": n}


def _value(n: int) -> dict[str, Any]:
    return {"type": "Value", "value_milli": n}


def _twice(values: list[int]) -> list[int]:
    return [2 * v for v in values]


CALC_CASES: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    (
        "TestReplicaCalcResourceMissingMetrics/superfluous metrics counted",
        _calc(
            "GetResourceReplicas",
            _util(100),
            4,
            pods=_pods([2000] * 4),
            pod_metrics=_samples(_twice([4000, 9500, 3000, 7000, 3200, 2000])),
        ),
        {"replicas": 24, "utilization_percent": 587, "raw_average_milli": 2 * 5875},
    ),
    (
        "TestReplicaCalcResourceMissingMetrics/some pods missing metrics scales down",
        _calc(
            "GetResourceReplicas",
            _util(100),
            4,
            pods=_pods([2000] * 4),
            pod_metrics=_samples(_twice([400, 95])),
        ),
        {"replicas": 3, "utilization_percent": 24, "raw_average_milli": 495},
    ),
    (
        "TestReplicaCalcResourceMissingMetrics/no change: metric equal to target",
        _calc(
            "GetResourceReplicas",
            _util(100),
            2,
            pods=_pods([2000] * 2),
            pod_metrics=_samples(_twice([1000])),
        ),
        {"replicas": 2, "utilization_percent": 100, "raw_average_milli": 2000},
    ),
    (
        "TestReplicaCalcResourceMissingMetrics/no change: metric above target",
        _calc(
            "GetResourceReplicas",
            _util(100),
            2,
            pods=_pods([2000] * 2),
            pod_metrics=_samples(_twice([1900])),
        ),
        {"replicas": 2, "utilization_percent": 190, "raw_average_milli": 3800},
    ),
    (
        "TestReplicaCalcResourceMissingMetrics/scale up: unready pod metric missing",
        _calc(
            "GetResourceReplicas",
            _util(50),
            3,
            pods=_pods([2000] * 3, ready=["False", "True", "True"]),
            pod_metrics=_samples(_twice([100, 2000])),
        ),
        {"replicas": 4, "utilization_percent": 200, "raw_average_milli": 4000},
    ),
    (
        "TestReplicaCalcResourceMissingMetrics/scale up: hot-CPU pod metric missing",
        _calc(
            "GetResourceReplicas",
            _util(50),
            3,
            pods=_pods([2000] * 3, ready=["False", "True", "True"], start=[HOT, COOL, COOL]),
            pod_metrics=_samples(_twice([100, 2000])),
        ),
        {"replicas": 4, "utilization_percent": 200, "raw_average_milli": 4000},
    ),
    (
        "TestReplicaCalcResourceMissingMetrics/scale down: unready pod metric missing",
        _calc(
            "GetResourceReplicas",
            _util(50),
            4,
            pods=_pods([2000] * 4, ready=["False", "True", "True", "True"]),
            pod_metrics=_samples(_twice([100, 100, 100])),
        ),
        {"replicas": 3, "utilization_percent": 10, "raw_average_milli": 200},
    ),
    (
        "TestReplicaCalcResourceMissingMetrics/scale down: target over 100",
        _calc(
            "GetResourceReplicas",
            _util(300),
            4,
            pods=_pods([2000, 2000, 4000, 4000], ready=["False", "True", "True", "True"]),
            pod_metrics=_samples(_twice([200, 100, 100])),
        ),
        {"replicas": 2, "utilization_percent": 6, "raw_average_milli": 200},
    ),
    (
        "TestReplicaCalcResourceTolerance/within default tolerance",
        _calc(
            "GetResourceReplicas",
            _util(100),
            3,
            pods=_pods([1800, 2000, 2200]),
            pod_metrics=_samples(_twice([1010, 1030, 1020])),
        ),
        {"replicas": 3, "utilization_percent": 102, "raw_average_milli": 2040},
    ),
    (
        "TestReplicaCalcResourceTolerance/within 200% scale-up tolerance",
        _calc(
            "GetResourceReplicas",
            _util(100),
            3,
            tolerance={"scale_down": 0.1, "scale_up": 2.0},
            pods=_pods([1800, 2000, 2200]),
            pod_metrics=_samples(_twice([1890, 1910, 1900])),
        ),
        {"replicas": 3, "utilization_percent": 190, "raw_average_milli": 3800},
    ),
    (
        "TestReplicaCalcResourceTolerance/outside 8% scale-up tolerance",
        _calc(
            "GetResourceReplicas",
            _util(100),
            3,
            tolerance={"scale_down": 2.0, "scale_up": 0.08},
            pods=_pods([1800, 2000, 2200]),
            pod_metrics=_samples(_twice([1100, 1080, 1090])),
        ),
        {"replicas": 4, "utilization_percent": 109, "raw_average_milli": 2180},
    ),
    (
        "TestReplicaCalcObjectMetric/scale up",
        _calc(
            "GetObjectMetricReplicas",
            _value(15000),
            3,
            pods=_pods([None] * 3),
            object_value_milli=20000,
        ),
        {"replicas": 4, "usage_milli": 20000},
    ),
    (
        "TestReplicaCalcObjectMetric/scale up: ignores unready pods",
        _calc(
            "GetObjectMetricReplicas",
            _value(10000),
            3,
            pods=_pods([None] * 3, ready=["False", "True", "False"]),
            object_value_milli=50000,
        ),
        {"replicas": 5, "usage_milli": 50000},
    ),
    (
        "TestReplicaCalcObjectMetric/within default tolerance",
        _calc(
            "GetObjectMetricReplicas",
            _value(20000),
            3,
            pods=_pods([None] * 3),
            object_value_milli=20666,
        ),
        {"replicas": 3, "usage_milli": 20666},
    ),
    (
        "TestReplicaCalcObjectMetric/scale up: very large metric saturates replicas to MaxInt32",
        _calc(
            "GetObjectMetricReplicas",
            _value(1),
            3,
            pods=_pods([None] * 3),
            object_value_milli=2**63 - 1,
        ),
        {"replicas": 2**31 - 1, "usage_milli": 2**63 - 1},
    ),
    (
        "TestReplicaCalcObjectPerPodMetric/scale up",
        _calc("GetObjectPerPodMetricReplicas", _avg(5000), 3, object_value_milli=20000),
        {"replicas": 4, "usage_milli": 6667},
    ),
    (
        "TestReplicaCalcObjectPerPodMetric/within default tolerance",
        _calc("GetObjectPerPodMetricReplicas", _avg(5000), 4, object_value_milli=20166),
        {"replicas": 4, "usage_milli": 5042},
    ),
    (
        "TestReplicaCalcExternalMetric/within default tolerance",
        _calc(
            "GetExternalMetricReplicas",
            _value(8888),
            3,
            pods=_pods([None] * 3),
            external_values_milli=[8600],
        ),
        {"replicas": 3, "usage_milli": 8600},
    ),
    (
        "TestReplicaCalcExternalMetric/outside configurable 1% tolerance",
        _calc(
            "GetExternalMetricReplicas",
            _value(8800),
            3,
            tolerance={"scale_down": 0.1, "scale_up": 0.01},
            pods=_pods([None] * 3),
            external_values_milli=[8900],
        ),
        {"replicas": 4, "usage_milli": 8900},
    ),
    (
        "TestReplicaCalcExternalMetric/usage overflow caps at MaxInt64",
        _calc(
            "GetExternalMetricReplicas",
            _value(2**63 - 1),
            3,
            pods=_pods([None] * 3),
            external_values_milli=[(2**63 - 1) // 2 + 1, (2**63 - 1) // 2 + 1],
        ),
        {"replicas": 3, "usage_milli": 2**63 - 1},
    ),
]


def _controller(**kw: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "now_s": NOW,
        "cpu_initialization_period_s": 120,
        "delay_of_initial_readiness_s": 10,
        "tolerance": {"scale_down": 0.1, "scale_up": 0.1},
        "downscale_stabilization_window_s": 300,
        "legacy_scale_up_limit_factor": 8.0,
        "legacy_scale_up_limit_minimum": 4.0,
        "behavior": None,
        "recommendation_history": None,
        "scale_up_events": [],
        "scale_down_events": [],
    }
    base.update(kw)
    base.setdefault("status_replicas", base["spec_replicas"])
    return base


def _cpu(target: int, levels: list[int]) -> dict[str, Any]:
    return {
        "type": "Resource",
        "name": "cpu",
        "target": _util(target),
        "pod_metrics": _samples(levels, ts=NOW),
    }


_FIVE_PODS = _pods([1000] * 5)
_SCALE_DOWN_CPU = _cpu(50, [100, 300, 500, 250, 250])
_EXTERNAL_ERROR = {"type": "External", "target": _avg(1000), "fetch_error": True}

CONTROLLER_CASES: list[tuple[str, dict[str, Any], int]] = [
    (
        "TestScaleDown",
        _controller(
            min_replicas=2,
            max_replicas=6,
            spec_replicas=5,
            pods=_FIVE_PODS,
            metrics=[_SCALE_DOWN_CPU],
            recommendation_history=[],
        ),
        3,
    ),
    (
        "TestScaleDownStabilizeInitialSize",
        _controller(
            min_replicas=2,
            max_replicas=6,
            spec_replicas=5,
            pods=_FIVE_PODS,
            metrics=[_SCALE_DOWN_CPU],
            recommendation_history=None,
        ),
        5,
    ),
    (
        "TestNoScaleDownOneMetricEmpty",
        _controller(
            min_replicas=2,
            max_replicas=6,
            spec_replicas=5,
            pods=_FIVE_PODS,
            metrics=[_SCALE_DOWN_CPU, _EXTERNAL_ERROR],
            recommendation_history=[],
        ),
        5,
    ),
    (
        "TestNoScaleDownOneMetricInvalid",
        _controller(
            min_replicas=2,
            max_replicas=6,
            spec_replicas=5,
            pods=_FIVE_PODS,
            metrics=[_SCALE_DOWN_CPU, {"type": "CheddarCheese"}],
            recommendation_history=[],
        ),
        5,
    ),
    (
        "TestScaleDownIncludeUnreadyPods",
        _controller(
            min_replicas=2,
            max_replicas=6,
            spec_replicas=5,
            pods=_pods([1000] * 5, ready=["True", "True", "True", "False", "False"]),
            metrics=[_SCALE_DOWN_CPU],
            recommendation_history=[],
        ),
        2,
    ),
    (
        "TestScaleDownIgnoreHotCpuPods",
        _controller(
            min_replicas=2,
            max_replicas=6,
            spec_replicas=5,
            pods=_pods([1000] * 5, start=[COOL, COOL, COOL, HOT, HOT], transition_at_start=True),
            metrics=[_SCALE_DOWN_CPU],
            recommendation_history=[],
        ),
        2,
    ),
    (
        "TestScaleDownIgnoresDeletionPods",
        _controller(
            min_replicas=2,
            max_replicas=6,
            spec_replicas=5,
            pods=_pods(
                [1000] * 7, ready=["True"] * 5 + ["False"] * 2, deleting=[False] * 5 + [True] * 2
            ),
            metrics=[_SCALE_DOWN_CPU],
            recommendation_history=[],
        ),
        3,
    ),
    (
        "TestMinReplicas",
        _controller(
            min_replicas=2,
            max_replicas=5,
            spec_replicas=3,
            pods=_pods([900, 1000, 1100]),
            metrics=[_cpu(90, [10, 94, 10])],
            recommendation_history=[],
        ),
        2,
    ),
    (
        "TestZeroMinReplicasDesiredZero",
        _controller(
            min_replicas=0,
            max_replicas=5,
            spec_replicas=3,
            pods=_pods([900, 1000, 1100]),
            metrics=[_cpu(90, [0, 0, 0])],
            recommendation_history=[],
        ),
        0,
    ),
    (
        "TestZeroReplicas",
        _controller(
            min_replicas=3, max_replicas=5, spec_replicas=0, pods=[], metrics=[_cpu(90, [])]
        ),
        0,
    ),
    (
        "TestToleranceCM",
        _controller(
            min_replicas=1,
            max_replicas=5,
            spec_replicas=3,
            pods=_pods([900, 1000, 1100]),
            metrics=[
                {
                    "type": "Pods",
                    "target": _avg(20000),
                    "pod_metrics": _samples([20000, 20001, 21000], ts=NOW),
                }
            ],
        ),
        3,
    ),
    (
        "TestToleranceCMObject",
        _controller(
            min_replicas=1,
            max_replicas=5,
            spec_replicas=3,
            pods=_pods([900, 1000, 1100]),
            metrics=[{"type": "Object", "target": _value(20000), "value_milli": 20050}],
        ),
        3,
    ),
    (
        "TestToleranceCMExternal",
        _controller(
            min_replicas=2,
            max_replicas=6,
            spec_replicas=4,
            pods=_pods([1000] * 4),
            metrics=[{"type": "External", "target": _value(8666), "values_milli": [8600]}],
        ),
        4,
    ),
    (
        "TestScaleUpFromZeroCMObject",
        _controller(
            min_replicas=0,
            max_replicas=6,
            spec_replicas=0,
            pods=[],
            metrics=[{"type": "Object", "target": _value(1000), "value_milli": 2000}],
        ),
        2,
    ),
    (
        "TestScaleDownToZeroCMObject",
        _controller(
            min_replicas=0,
            max_replicas=6,
            spec_replicas=5,
            pods=_FIVE_PODS,
            metrics=[{"type": "Object", "target": _value(14400), "value_milli": 0}],
            recommendation_history=[],
        ),
        0,
    ),
    (
        "TestScaleUpFromZeroIsDisabledWithMinReplicas",
        _controller(
            min_replicas=1,
            max_replicas=6,
            spec_replicas=0,
            pods=[],
            metrics=[{"type": "Object", "target": _value(1000), "value_milli": 9000}],
        ),
        0,
    ),
]


@pytest.mark.parametrize(
    ("inp", "expected"),
    [pytest.param(i, e, id=n) for n, i, e in CALC_CASES],
)
def test_calc_case(inp: dict[str, Any], expected: dict[str, Any]) -> None:
    assert replay({"kind": "calc", "input": inp, "expected": expected}) == expected


@pytest.mark.parametrize(
    ("inp", "desired"),
    [pytest.param(i, d, id=n) for n, i, d in CONTROLLER_CASES],
)
def test_controller_case(inp: dict[str, Any], desired: int) -> None:
    expected = {"desired_replicas": desired}
    assert replay({"kind": "controller", "input": inp, "expected": expected}) == expected


def _rules(select: str, *policies: tuple[str, int, int], window: int | None = 0) -> dict[str, Any]:
    return {
        "select_policy": select,
        "stabilization_window_s": window,
        "policies": [{"type": t, "value": v, "period_s": p} for t, v, p in policies],
    }


STORE_CASES: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    (
        "one outdated entry to be replaced with behavior",
        {
            "prev_events": [{"replica_change": 7, "age_s": 61}],
            "behavior_rules": _rules("Max", ("Pods", 10, 60), ("Percent", 100, 60)),
        },
        {
            "replicas_change_last_60s_before_store": 0,
            "events_after": [{"replica_change": 5, "outdated": False}],
        },
    ),
    (
        "one outdated entry to be kept untouched without behavior",
        {"prev_events": [{"replica_change": 7, "age_s": 61}], "behavior_rules": None},
        {
            "replicas_change_last_60s_before_store": 0,
            "events_after": [{"replica_change": 7, "outdated": False}],
        },
    ),
    (
        "replace one entry, use policies with different periods",
        {
            "prev_events": [
                {"replica_change": 8, "age_s": 29},
                {"replica_change": 6, "age_s": 59},
                {"replica_change": 7, "age_s": 61},
                {"replica_change": 9, "age_s": 61},
            ],
            "behavior_rules": _rules("Max", ("Pods", 10, 60), ("Percent", 100, 30)),
        },
        {
            "replicas_change_last_60s_before_store": 14,
            "events_after": [
                {"replica_change": 8, "outdated": False},
                {"replica_change": 6, "outdated": False},
                {"replica_change": 7, "outdated": True},
                {"replica_change": 5, "outdated": False},
            ],
        },
    ),
    (
        "two entries, both actual",
        {
            "prev_events": [
                {"replica_change": 7, "age_s": 58},
                {"replica_change": 6, "age_s": 59},
            ],
            "behavior_rules": _rules("Max", ("Pods", 10, 120), ("Percent", 100, 30)),
        },
        {
            "replicas_change_last_60s_before_store": 13,
            "events_after": [
                {"replica_change": 7, "outdated": False},
                {"replica_change": 6, "outdated": False},
                {"replica_change": 5, "outdated": False},
            ],
        },
    ),
]


@pytest.mark.parametrize(
    ("inp", "expected"),
    [pytest.param(i, e, id=n) for n, i, e in STORE_CASES],
)
def test_store_scale_event_case(inp: dict[str, Any], expected: dict[str, Any]) -> None:
    case_input = {"op": "storeScaleEvent", "replica_change": 5, "now_s": NOW, **inp}
    assert replay({"kind": "behavior", "input": case_input, "expected": expected}) == expected


LIMIT_CASES: list[tuple[str, dict[str, Any], int]] = [
    (
        "scale up: select Min picks the smaller policy",
        {
            "op": "calculateScaleUpLimitWithScalingRules",
            "current_replicas": 10,
            "rules": _rules("Min", ("Pods", 4, 15), ("Percent", 100, 15)),
        },
        14,
    ),
    (
        "scale up: Disabled keeps current",
        {
            "op": "calculateScaleUpLimitWithScalingRules",
            "current_replicas": 10,
            "rules": _rules("Disabled", ("Pods", 4, 15)),
        },
        10,
    ),
    (
        "scale down: select Min keeps the largest count",
        {
            "op": "calculateScaleDownLimitWithBehaviors",
            "current_replicas": 100,
            "rules": _rules("Min", ("Pods", 20, 60), ("Percent", 1, 60)),
        },
        99,
    ),
    (
        "scale down: percent truncates (10 % of 72)",
        {
            "op": "calculateScaleDownLimitWithBehaviors",
            "current_replicas": 72,
            "rules": _rules("Max", ("Percent", 10, 60)),
        },
        64,
    ),
    (
        "scale up: percent from zero adds nothing, pods policy does",
        {
            "op": "calculateScaleUpLimitWithScalingRules",
            "current_replicas": 0,
            "rules": _rules("Max", ("Pods", 4, 15), ("Percent", 100, 15)),
        },
        4,
    ),
]


@pytest.mark.parametrize(
    ("inp", "limit"),
    [pytest.param(i, lim, id=n) for n, i, lim in LIMIT_CASES],
)
def test_limit_case(inp: dict[str, Any], limit: int) -> None:
    inp = {"scale_up_events": [], "scale_down_events": [], "now_s": NOW, **inp}
    expected = {"limit": limit}
    assert replay({"kind": "behavior", "input": inp, "expected": expected}) == expected
