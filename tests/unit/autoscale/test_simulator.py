"""The simulator: a hand-derived replica timeline, the seed's pitfall, load specs, reports."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.autoscale_samples import QUEUE_HPA, STUCK_LOAD

from faena.autoscale.errors import LoadSpecError
from faena.autoscale.manifest import load_hpa, load_hpa_file
from faena.autoscale.sim_load import LoadSpec, parse_duration, parse_load_spec
from faena.autoscale.sim_report import (
    percentile,
    summarize,
)
from faena.autoscale.simulator import Scenario, SimResult, simulate

DATA = Path(__file__).parent / "data"
REPO = Path(__file__).parents[3]

SEED_BEHAVIOR = """
  behavior:
    scaleUp:
      stabilizationWindowSeconds: 0
      policies:
      - {type: Percent, value: 100, periodSeconds: 30}
      - {type: Pods, value: 2, periodSeconds: 30}
"""


def _replicas_at(result: SimResult) -> dict[float, int]:
    return {row.t: row.desired_replicas for row in result.timeline}


def test_hand_derived_timeline_legacy_and_behavior() -> None:
    load = parse_load_spec(STUCK_LOAD, horizon=60)
    legacy = load_hpa(QUEUE_HPA).spec
    with_behavior = load_hpa(QUEUE_HPA + SEED_BEHAVIOR).spec
    a, b = simulate(load, [Scenario("legacy", legacy), Scenario("behavior", with_behavior)], 60)

    # Legacy path (no behavior), Q = 50, T = 10:
    #   t=15: history seeded with 1; ratio 50/(10*1) = 5 -> proposal ceil(50/10) = 5;
    #         legacy cap int(max(2*1, 4)) = 4 -> 4 (ScaleUpLimit).
    #   t=30: status 4 (3 pending pods count); ratio 50/40 = 1.25 -> 5; cap max(8, 4) -> 5.
    #   t=45, t=60: ratio 50/50 = 1.0 is within tolerance -> stays 5.
    assert [(e.t, e.old, e.new, e.reason) for e in a.scale_events] == [
        (15.0, 1, 4, "ScaleUpLimit"),
        (30.0, 4, 5, "DesiredWithinRange"),
    ]
    legacy_at = _replicas_at(a)
    assert [legacy_at[t] for t in (0, 10, 15, 25, 30, 45, 60)] == [1, 1, 4, 4, 5, 5, 5]

    # Behavior path (the seed's scaleUp: +100 % or +2 pods per 30 s, Max):
    #   t=15: proposal 5; no events -> period start 1 -> max(ceil(1*2), 1+2) = 3 -> 3.
    #   t=30: proposal ceil(50/10) = 5 (ratio 50/30); the +2 event is 15 s old (< 30 s), so the
    #         period started at 1 -> limit 3 = current -> no change.
    #   t=45: the event is 30 s old, outside the period -> start 3 -> max(6, 5) = 6 -> 5.
    assert [(e.t, e.old, e.new) for e in b.scale_events] == [(15.0, 1, 3), (45.0, 3, 5)]
    behavior_at = _replicas_at(b)
    assert [behavior_at[t] for t in (10, 15, 30, 40, 45, 60)] == [1, 3, 3, 3, 5, 5]

    for result in (a, b):
        assert result.max_backlog == 50
        assert (result.started, result.completed) == (1, 0)
        assert sorted(result.waits)[-1] == 59.0  # unstarted jobs count their wait so far
        assert result.burst_drain_s == (None,)


def _pitfall_load(external_series: str = "once") -> LoadSpec:
    return parse_load_spec(
        {
            "seed": 1,
            "arrivals": [{"constant": {"rate": 2}}],
            "service": {"distribution": "constant", "mean": 10},
            "workers": {
                "initial_replicas": 2,
                "concurrency": 4,
                "startup_delay": 20,
                "cpu_per_task": "20m",
            },
            "metrics": {"external_series": external_series},
        },
        horizon=3600,
    )


def test_seed_pods_metric_pitfall_overprovisions_and_oscillates() -> None:
    seed = load_hpa_file(DATA / "seed-airflow-hpa.yaml").spec
    fixed = load_hpa_file(REPO / "deploy" / "k8s" / "base" / "hpa-worker.yaml").spec
    bad, good = (
        summarize(r)
        for r in simulate(_pitfall_load(), [Scenario("seed", seed), Scenario("fixed", fixed)], 3600)
    )
    # 2 jobs/s * 10 s = 20 busy slots = 5 workers of 4. Every pod reports the whole queue, so
    # the seed's HPA multiplies the queue by the pod count: it runs into maxReplicas again and
    # again; the External/AverageValue form stays near the 5-6 workers the load needs.
    assert bad.max_replicas == seed.max_replicas == 10
    assert good.max_replicas <= 7
    assert bad.scale_events >= 3 * good.scale_events
    assert bad.replica_seconds > 1.2 * good.replica_seconds
    assert bad.completed >= good.completed - 100


def test_external_metric_returning_one_series_per_pod_is_the_same_pitfall() -> None:
    fixed = load_hpa_file(REPO / "deploy" / "k8s" / "base" / "hpa-worker.yaml").spec
    once = summarize(simulate(_pitfall_load("once"), [Scenario("once", fixed)], 3600)[0])
    per_pod = summarize(simulate(_pitfall_load("per_pod"), [Scenario("per_pod", fixed)], 3600)[0])
    assert per_pod.max_replicas == 10
    assert per_pod.replica_seconds > 1.2 * once.replica_seconds


def test_same_spec_same_result_and_burst_drains() -> None:
    spec = {
        "seed": 5,
        "arrivals": [
            {"constant": {"rate": 1, "poisson": True}},
            {"burst": {"at": 120, "count": 80}},
        ],
        "service": {"distribution": "lognormal", "mean": 4, "sigma": 0.8},
        "workers": {"initial_replicas": 2, "concurrency": 2, "startup_delay": 10},
    }
    hpa = load_hpa(QUEUE_HPA).spec
    first = simulate(parse_load_spec(spec, horizon=900), [Scenario("a", hpa)], 900)[0]
    second = simulate(parse_load_spec(spec, horizon=900), [Scenario("a", hpa)], 900)[0]
    assert first == second
    drain = first.burst_drain_s[0]
    assert drain is not None and 0 < drain < 600
    assert first.max_backlog >= 70


@pytest.mark.parametrize(
    ("doc", "field"),
    [
        ({"arrivals": []}, "arrivals"),
        ({"arrivals": [{"wave": {}}]}, "arrivals[0].wave"),
        ({"arrivals": [{"constant": {"rate": -1}}]}, "arrivals[0].constant.rate"),
        (
            {"arrivals": [{"burst": {"at": 1, "count": 1}}], "service": {"distribution": "pareto"}},
            "service.distribution",
        ),
        (
            {"arrivals": [{"burst": {"at": 1, "count": 1}}], "workers": {"concurrency": 0}},
            "workers.concurrency",
        ),
        (
            {"arrivals": [{"burst": {"at": 1, "count": 1}}], "workers": {"cpu_request": "lots"}},
            "workers.cpu_request",
        ),
        (
            {"arrivals": [{"burst": {"at": 1, "count": 1}}], "metrics": {"pods_report": "x"}},
            "metrics.pods_report",
        ),
    ],
)
def test_load_spec_errors_name_the_field(doc: dict[str, object], field: str) -> None:
    with pytest.raises(LoadSpecError) as info:
        parse_load_spec(doc)
    assert info.value.field == field


def test_durations() -> None:
    assert parse_duration("90") == 90
    assert parse_duration("15m") == 900
    assert parse_duration("1h30m") == 5400
    assert parse_duration(2.5) == 2.5
    with pytest.raises(LoadSpecError, match="1h30m"):
        parse_duration("soon")


def test_percentile_nearest_rank() -> None:
    assert percentile([], 50) is None
    assert percentile([3.0, 1.0, 2.0, 4.0], 50) == 2.0
    assert percentile([float(i) for i in range(1, 101)], 95) == 95.0
    assert percentile([7.0], 99) == 7.0
