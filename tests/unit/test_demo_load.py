"""The demo's load plan, pipeline and HPA: every day's run once, a trickle before one burst,
the poison job inside it, a run that makes every job of its day, and a manifest whose
windows fit the demo's minute."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from faena.demo.load import STEPS_PER_DAY, TRICKLE_DAYS, build_load, day_of, demo_load, table_jobs
from faena.demo.run import demo_spec


@pytest.mark.parametrize("days", [1, 2, 3, 14, 28])
def test_the_plan_holds_every_job_once_in_time_order(days: int) -> None:
    steps = demo_load(days)
    planned = [job for step in steps for job in step.jobs]
    assert Counter(map(repr, planned)) == Counter(map(repr, build_load(days)))
    assert len(planned) == days * 6 * 5 == days * STEPS_PER_DAY
    assert [d for s in steps for d in s.days] == [day_of(d) for d in range(1, days + 1)]
    assert [s.at for s in steps] == sorted(s.at for s in steps)


def test_the_backfill_is_one_burst_after_the_trickle() -> None:
    steps = demo_load(14)
    *trickle, burst = steps
    assert len(trickle) == TRICKLE_DAYS and all(len(s.days) == 1 for s in trickle)
    assert len(burst.days) == 14 - TRICKLE_DAYS and "burst" in burst.label
    poison = ("dq.check", ["payments", "2026-11-13", "schema_drift"])
    assert poison in burst.jobs


def test_the_demo_hpa_scales_etl_and_dq_with_short_windows() -> None:
    spec = demo_spec(max_workers=6)
    assert (spec.min_replicas, spec.max_replicas) == (1, 6)
    assert spec.scale_target.name == "demo-worker"
    assert spec.behavior is not None
    assert spec.behavior.scale_down.stabilization_window_seconds == 10
    assert demo_spec(max_workers=0).max_replicas == 1  # never below minReplicas


def test_a_day_s_run_is_the_day_s_jobs_extract_then_load_then_checks() -> None:
    """The pipeline makes the very jobs the plan counts (task and arguments), each table's
    load after its extract and its checks after its load."""
    from faena.demo.load import TABLES
    from faena.demo.tasks import etl_daily

    run = etl_daily.build({"day": "2026-11-05"})
    made = Counter(
        repr((s.job.task, list(json.loads(s.job.kwargs_json).values()))) for s in run.steps
    )
    assert made == Counter(repr(j) for t in TABLES for j in table_jobs(t, "2026-11-05"))
    assert len(run.steps) == STEPS_PER_DAY
    ups = {s.name: s.upstreams for s in run.steps}
    for t in TABLES:
        assert ups[f"extract_{t}"] == () and ups[f"load_{t}"] == (f"extract_{t}",)
        assert ups[f"check_{t}_schema_drift"] == (f"load_{t}",)
    assert run.key == "etl_daily:2026-11-05"
