"""The demo's load plan and HPA: every job of every day once, a trickle before one burst,
the poison job inside it, and a manifest whose windows fit the demo's minute."""

from __future__ import annotations

from collections import Counter

import pytest

from faena.demo.load import TRICKLE_DAYS, build_load, demo_load
from faena.demo.run import demo_spec


@pytest.mark.parametrize("days", [1, 2, 3, 14, 28])
def test_the_plan_holds_every_job_once_in_time_order(days: int) -> None:
    steps = demo_load(days)
    planned = [job for step in steps for job in step.jobs]
    assert Counter(map(repr, planned)) == Counter(map(repr, build_load(days)))
    assert len(planned) == days * 6 * 5
    assert [s.at for s in steps] == sorted(s.at for s in steps)


def test_the_backfill_is_one_burst_after_the_trickle() -> None:
    steps = demo_load(14)
    *trickle, burst = steps
    assert len(trickle) == TRICKLE_DAYS * 6 and all(len(s.jobs) == 5 for s in trickle)
    assert len(burst.jobs) == (14 - TRICKLE_DAYS) * 30 and "burst" in burst.label
    poison = ("dq.check", ["payments", "2026-11-13", "schema_drift"])
    assert poison in burst.jobs


def test_the_demo_hpa_scales_etl_and_dq_with_short_windows() -> None:
    spec = demo_spec(max_workers=6)
    assert (spec.min_replicas, spec.max_replicas) == (1, 6)
    assert spec.scale_target.name == "demo-worker"
    assert spec.behavior is not None
    assert spec.behavior.scale_down.stabilization_window_seconds == 10
    assert demo_spec(max_workers=0).max_replicas == 1  # never below minReplicas
