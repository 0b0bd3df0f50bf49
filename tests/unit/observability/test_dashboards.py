"""The committed dashboards are exactly what the generator writes, and are well formed."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from faena.observability import dashboards as gen

ROOT = Path(__file__).resolve().parents[3]
OUT = ROOT / "deploy" / "grafana" / "dashboards"
KNOWN_PREFIXES = ("worker_", "celery_", "faena_", "process_", *gen.CLUSTER_ONLY_PREFIXES)


def test_committed_json_equals_generated() -> None:
    boards = gen.dashboards()
    assert sorted(p.name for p in OUT.glob("*.json")) == sorted(boards)
    for name, board in boards.items():
        assert (OUT / name).read_text() == gen.render(board), (
            f"{name} is stale: python -m faena.observability.dashboards --out {OUT}"
        )
    assert gen.main(["--out", str(OUT), "--check"]) == 0


@pytest.mark.parametrize("name", sorted(gen.dashboards()))
def test_layout_ids_and_queries(name: str) -> None:
    board = json.loads((OUT / name).read_text())
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids))
    cells: set[tuple[int, int]] = set()
    for panel in board["panels"]:
        g = panel["gridPos"]
        assert g["x"] + g["w"] <= 24
        mine = {
            (x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])
        }
        assert not cells & mine, f"panel {panel['title']!r} overlaps another"
        cells |= mine
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            expr = target["expr"]
            assert expr.count("(") == expr.count(")"), expr
            if panel["type"] == "logs":
                assert "| json |" in expr
                continue
            names = set(
                re.findall(
                    r"\b([a-z_]+(?:_total|_seconds|_bytes|_length|_bucket|"
                    r"_slots|_used|_dead|_workers|_replicas|_running|"
                    r"_concurrency|_runs))\b",
                    expr,
                )
            )
            assert names, expr
            for metric in names:
                assert metric.startswith(KNOWN_PREFIXES), (panel["title"], metric)


def test_every_metric_family_of_the_design_is_on_a_dashboard() -> None:
    text = "".join(gen.render(b) for b in gen.dashboards().values())
    for metric in (
        "celery_queue_length", "worker_tasks_processed_total", "worker_task_duration_seconds",
        "worker_task_failures_total", "faena_pool_slots", "faena_pool_slots_used",
        "faena_queue_oldest_job_age_seconds", "faena_jobs_dead", "faena_workers",
        "faena_desired_workers", "process_cpu_seconds_total", "process_resident_memory_bytes",
    ):  # fmt: skip
        assert metric in text, metric


def test_provisioning_points_at_the_dashboards_and_both_datasources() -> None:
    prov = ROOT / "deploy" / "grafana" / "provisioning"
    ds = yaml.safe_load((prov / "datasources" / "faena.yml").read_text())
    assert {d["type"] for d in ds["datasources"]} == {"prometheus", "loki"}
    providers = yaml.safe_load((prov / "dashboards" / "faena.yml").read_text())["providers"]
    assert providers[0]["type"] == "file"
    assert providers[0]["options"]["path"]
