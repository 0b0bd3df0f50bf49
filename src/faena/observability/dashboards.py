"""Grafana dashboards, generated from code: ``python -m faena.observability.dashboards --out
deploy/grafana/dashboards`` (``--check`` fails if the committed files differ).

Every query is PromQL over faena's own metric names (plus ``process_*`` from the process
collector); queries over cluster-only metrics (cAdvisor ``container_*``, kube-state-metrics
``kube_*``) are listed in :data:`CLUSTER_ONLY_PREFIXES`: they stay empty off Kubernetes.
Broker gauges are exported by every worker, so they are aggregated with ``max``; worker
counters with ``sum``.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CLUSTER_ONLY_PREFIXES = ("container_", "kube_")
PROM = {"type": "prometheus", "uid": "${datasource}"}
LOKI = {"type": "loki", "uid": "${loki}"}
SEL = 'namespace=~"$namespace"'
QSEL = f'{SEL}, queue=~"$queue"'
RATE = "[$__rate_interval]"
# worker-process series only: the server and the exporter export process_* too
ON_WORKERS = "and on (namespace, instance) faena_worker_concurrency"


@dataclass(frozen=True)
class Target:
    expr: str
    legend: str = ""


@dataclass(frozen=True)
class Panel:
    title: str
    description: str
    targets: tuple[Target, ...]
    unit: str = "short"
    kind: str = "timeseries"
    width: int = 12
    height: int = 8
    overrides: tuple[dict[str, Any], ...] = field(default_factory=tuple)


def _quantile(q: str, by: str = "le") -> str:
    return (
        f"histogram_quantile({q}, sum by ({by}) "
        f"(rate(worker_task_duration_seconds_bucket{{{QSEL}}}{RATE})))"
    )


WORKER_PANELS = (
    Panel(
        "Queue depth",
        "Jobs waiting per queue, runnable now (celery_queue_length; max over the pods that "
        "export the same broker gauge).",
        (Target(f"max by (queue) (celery_queue_length{{{QSEL}}})", "{{queue}}"),),
    ),
    Panel(
        "Oldest job age",
        "How long the longest-waiting runnable job of each queue has waited.",
        (Target(f"max by (queue) (faena_queue_oldest_job_age_seconds{{{QSEL}}})", "{{queue}}"),),
        unit="s",
    ),
    Panel(
        "Throughput (jobs/s)",
        "Attempts ending per second, per queue and in total.",
        (
            Target(
                f"sum by (queue) (rate(worker_tasks_processed_total{{{QSEL}}}{RATE}))", "{{queue}}"
            ),
            Target(f"sum(rate(worker_tasks_processed_total{{{QSEL}}}{RATE}))", "total"),
        ),
        unit="ops",
    ),
    Panel(
        "Outcomes (jobs/s)",
        "Attempts ending per second by the state they led to: succeeded, failed (will "
        "retry), dead (no attempts left), cancelled.",
        (
            Target(
                f"sum by (status) (rate(worker_tasks_processed_total{{{QSEL}}}{RATE}))",
                "{{status}}",
            ),
        ),
        unit="ops",
    ),
    Panel(
        "Duration p50 / p95 / p99",
        "Run time of attempts, from the worker_task_duration_seconds histogram (buckets up "
        "to 1 h; a quantile is as precise as its bucket).",
        (
            Target(_quantile("0.5"), "p50"),
            Target(_quantile("0.95"), "p95"),
            Target(_quantile("0.99"), "p99"),
        ),
        unit="s",
    ),
    Panel(
        "Duration p95 by task",
        "95th percentile run time per task.",
        (Target(_quantile("0.95", "task, le"), "{{task}}"),),
        unit="s",
    ),
    Panel(
        "Failure rate",
        "Failed attempts / ended attempts, per queue (0-1). A retried attempt counts as a "
        "failure too.",
        (
            Target(
                f"sum by (queue) (rate(worker_task_failures_total{{{QSEL}}}{RATE})) / "
                f"sum by (queue) (rate(worker_tasks_processed_total{{{QSEL}}}{RATE}))",
                "{{queue}}",
            ),
        ),
        unit="percentunit",
    ),
    Panel(
        "Failures by error type (per s)",
        "Failed attempts per second by exception class (the first 20 names a worker sees, "
        "then 'other'; WorkerLost = the worker died mid-job).",
        (
            Target(
                f"sum by (error_type) (rate(worker_task_failures_total{{{QSEL}}}{RATE}))",
                "{{error_type}}",
            ),
        ),
        unit="ops",
    ),
    Panel(
        "Dead jobs",
        "Jobs kept after their last attempt failed; retry them with `faena jobs retry`.",
        (Target(f"max by (queue) (faena_jobs_dead{{{QSEL}}})", "{{queue}}"),),
    ),
    Panel(
        "Pool utilisation",
        "Slots in use / pool size (0-1). At 1 for long, jobs wait for slots, not workers.",
        (
            Target(
                f"max by (pool) (faena_pool_slots_used{{{SEL}}}) / "
                f"(max by (pool) (faena_pool_slots{{{SEL}}}) > 0)",
                "{{pool}}",
            ),
        ),
        unit="percentunit",
    ),
    Panel(
        "Workers: desired vs actual",
        "Ready workers (each reports its state), the supervisor's desired count per pool "
        "(faena up / faena autoscale), and on Kubernetes the HPA's desired replicas.",
        (
            Target(f"sum by (state) (faena_workers{{{SEL}}})", "{{state}}"),
            Target(f"sum by (pool) (faena_desired_workers{{{SEL}}})", "desired {{pool}}"),
            Target(
                f"sum by (horizontalpodautoscaler) "
                f"(kube_horizontalpodautoscaler_status_desired_replicas{{{SEL}}})",
                "HPA desired {{horizontalpodautoscaler}}",
            ),
        ),
    ),
    Panel(
        "Busy slots",
        "Jobs running on the workers vs their total concurrency.",
        (
            Target(f"sum(faena_worker_jobs_running{{{SEL}}})", "running"),
            Target(f"sum(faena_worker_concurrency{{{SEL}}})", "concurrency"),
        ),
    ),
    Panel(
        "Failed jobs (logs)",
        "The seed's LogQL: faena's JSON log lines of failed attempts.",
        (Target('{namespace=~"$namespace", container="worker"} | json | status="failed"'),),
        kind="logs",
        width=24,
        height=10,
    ),
)

RESOURCE_PANELS = (
    Panel(
        "Worker CPU (cores)",
        "CPU seconds per second of each worker process (process collector; works anywhere).",
        (Target(f"rate(process_cpu_seconds_total{{{SEL}}}{RATE}) {ON_WORKERS}", "{{instance}}"),),
    ),
    Panel(
        "Worker memory (RSS)",
        "Resident memory of each worker process (process collector; works anywhere).",
        (Target(f"process_resident_memory_bytes{{{SEL}}} {ON_WORKERS}", "{{instance}}"),),
        unit="bytes",
    ),
    Panel(
        "Container CPU (cores, cluster only)",
        "cAdvisor container CPU of the worker pods, children of process-isolated jobs included.",
        (
            Target(
                f'sum by (pod) (rate(container_cpu_usage_seconds_total{{{SEL}, container="worker"}}'
                f"{RATE}))",
                "{{pod}}",
            ),
        ),
    ),
    Panel(
        "Container memory (working set, cluster only)",
        "cAdvisor working set of the worker pods: what the kubelet compares with the limit "
        "before an OOM kill, and what the HPA's memory target reads.",
        (
            Target(
                f'sum by (pod) (container_memory_working_set_bytes{{{SEL}, container="worker"}})',
                "{{pod}}",
            ),
        ),
        unit="bytes",
    ),
)


def _runs(q: str, metric: str, by: str) -> str:
    """A quantile of a pipeline gauge histogram (no rate: it is read off the store)."""
    return f"histogram_quantile({q}, max by ({by}, le) (faena_pipeline_{metric}_bucket{{{SEL}}}))"


_RUNS = f"max by (pipeline) (faena_pipeline_runs{{{SEL}, state"
_ENDED = '=~"succeeded|failed|cancelled"})'
_FAILED_LOGS = '{namespace=~"$namespace"} | json | event="pipeline.run_finished"'
# the seed's "Flujo End-to-End": time per flow, success / failure, delays, dependencies
PIPELINE_PANELS = (
    Panel(
        "Run duration p50 / p95 by pipeline",
        "Creation to last step's end of the ended runs among the newest 500 kept.",
        tuple(
            Target(_runs(q, "run_duration_seconds", "pipeline"), f"{{{{pipeline}}}} {n}")
            for q, n in (("0.5", "p50"), ("0.95", "p95"))
        ),
        unit="s",
    ),
    Panel(
        "Runs by state",
        "Runs of each pipeline by state (running, succeeded, failed, cancelled), newest 500.",
        (
            Target(
                f"max by (pipeline, state) (faena_pipeline_runs{{{SEL}}})", "{{pipeline}} {{state}}"
            ),
        ),
    ),
    Panel(
        "Failure rate by pipeline",
        "Failed runs / ended runs (0-1) among the newest 500.",
        (Target(f'{_RUNS}="failed"}}) / {_RUNS}{_ENDED}', "{{pipeline}}"),),
        unit="percentunit",
    ),
    Panel(
        "Step wait p95 (release to start)",
        "How long each step waited for a worker and a pool slot once its upstreams ended: "
        "the delay each dependency adds.",
        (Target(_runs("0.95", "step_wait_seconds", "pipeline, step"), "{{pipeline}} {{step}}"),),
        unit="s",
    ),
    Panel(
        "Failed runs (logs)",
        "pipeline.run_finished lines of runs that failed or were cancelled.",
        (Target(f'{_FAILED_LOGS} | status!="succeeded"'),),
        kind="logs",
        width=24,
    ),
)


def _variable(name: str, label: str, query: str, all_value: str = ".*") -> dict[str, Any]:
    return {
        "name": name,
        "label": label,
        "type": "query",
        "datasource": PROM,
        "query": {"query": query, "refId": f"{name}-values"},
        "definition": query,
        "refresh": 2,
        "includeAll": True,
        "multi": True,
        "allValue": all_value,
        "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
        "sort": 1,
    }


def _templating() -> dict[str, Any]:
    return {
        "list": [
            {"name": "datasource", "label": "Prometheus", "type": "datasource",
             "query": "prometheus", "current": {}},
            {"name": "loki", "label": "Loki", "type": "datasource", "query": "loki",
             "current": {}},
            _variable("namespace", "Namespace", "label_values(faena_workers, namespace)"),
            _variable("queue", "Queue",
                      'label_values(celery_queue_length{namespace=~"$namespace"}, queue)'),
        ]
    }  # fmt: skip


def _panel(panel: Panel, pid: int, x: int, y: int) -> dict[str, Any]:
    logs = panel.kind == "logs"
    out: dict[str, Any] = {
        "id": pid,
        "type": panel.kind,
        "title": panel.title,
        "description": panel.description,
        "datasource": LOKI if logs else PROM,
        "gridPos": {"h": panel.height, "w": panel.width, "x": x, "y": y},
        "targets": [
            {"refId": chr(ord("A") + i), "expr": t.expr, "datasource": LOKI if logs else PROM}
            | ({} if logs else {"legendFormat": t.legend or "__auto", "range": True})
            for i, t in enumerate(panel.targets)
        ],
    }
    if logs:
        out["options"] = {"showTime": True, "wrapLogMessage": True, "sortOrder": "Descending"}
    else:
        out["fieldConfig"] = {
            "defaults": {"unit": panel.unit, "min": 0, "custom": {"fillOpacity": 10}},
            "overrides": list(panel.overrides),
        }
        out["options"] = {"legend": {"displayMode": "list", "placement": "bottom"}}
    return out


def dashboard(uid: str, title: str, panels: tuple[Panel, ...]) -> dict[str, Any]:
    """One dashboard; panels flow left to right in rows of 24 columns."""
    built, x, y, row_h = [], 0, 0, 0
    for pid, panel in enumerate(panels, 1):
        if x + panel.width > 24:
            x, y, row_h = 0, y + row_h, 0
        built.append(_panel(panel, pid, x, y))
        x += panel.width
        row_h = max(row_h, panel.height)
    return {
        "uid": uid,
        "title": title,
        "tags": ["faena"],
        "editable": True,
        "schemaVersion": 39,
        "version": 1,
        "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "timezone": "browser",
        "graphTooltip": 1,
        "annotations": {"list": []},
        "links": [],
        "templating": _templating(),
        "panels": built,
    }


def dashboards() -> dict[str, dict[str, Any]]:
    """File name -> dashboard JSON."""
    return {
        "faena-workers.json": dashboard("faena-workers", "faena / workers", WORKER_PANELS),
        "faena-resources.json": dashboard("faena-resources", "faena / resources", RESOURCE_PANELS),
        "faena-pipelines.json": dashboard("faena-pipelines", "faena / pipelines", PIPELINE_PANELS),
    }


def render(board: dict[str, Any]) -> str:
    return json.dumps(board, indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m faena.observability.dashboards")
    parser.add_argument("--out", type=Path, default=Path("deploy/grafana/dashboards"))
    parser.add_argument("--check", action="store_true", help="fail if files differ")
    args = parser.parse_args(argv)
    stale = []
    for name, board in dashboards().items():
        path = args.out / name
        text = render(board)
        if args.check:
            if not path.exists() or path.read_text() != text:
                stale.append(str(path))
            continue
        args.out.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        print(f"wrote {path}")
    if stale:
        print(
            f"out of date: {', '.join(stale)}; regenerate with "
            f"python -m faena.observability.dashboards --out {args.out}",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
