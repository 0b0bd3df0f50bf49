"""A real Prometheus on loopback scrapes a live faena worker, a faena server, the Celery
exporter and a supervisor stand-in while a load runs (successes, retries, failures, a timeout,
dead jobs, a saturated pool, a queue nobody consumes, a pipeline run that fails and one that
succeeds); then every dashboard query and every alert
expression is evaluated through Prometheus's HTTP API."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.conftest import need, port_open
from tests.integration.test_metrics_support import (
    FAENA,
    ROOT,
    env_for,
    free_port,
    http_get,
    python,
    start_worker,
    stop_worker,
    wait_for,
    write_app,
)

from faena.observability import dashboards
from faena.observability.metrics import DesiredWorkers, broker_collector, new_registry
from faena.observability.metrics_http import serve

pytestmark = [pytest.mark.prometheus, pytest.mark.redis, pytest.mark.slow]
RULES = ROOT / "deploy" / "prometheus" / "alerts.yml"
CELERY_REDIS = "redis://127.0.0.1:6379/14"
VARS = {"$__rate_interval": "1m", "$namespace": "data", "$queue": ".*"}

# Thresholds a short test cannot reach (minutes of waiting), lowered for the check; the rule
# text is otherwise evaluated as shipped. Their firing is proven by alerts_test.yml.
LOWERED = {"FaenaQueueOldestJobTooOld": ("> 600", "> 0")}
# alert -> the label sets its expression must return during the test
EXPECTED = {
    "HighWorkerFailureRate": [{"namespace": "data", "queue": "dq"}],
    "WorkerQueueBacklog": [{"namespace": "data", "queue": "celery_backlog"}],
    "FaenaQueueOldestJobTooOld": [{"namespace": "data", "queue": "reports"}],
    "FaenaDeadJobsGrowing": [{"namespace": "data", "queue": "dq"}],
    "FaenaPoolSaturated": [{"namespace": "data", "pool": "etl_pool"}],
    "FaenaNoWorkerForQueue": [{"namespace": "data", "queue": "reports"}],
    "FaenaBrokerUnreachable": [{"namespace": "data", "instance": "BROKEN"}],
    # the load declares no schedule: it evaluates to nothing here (alerts_test.yml proves it
    # fires)
    "FaenaScheduleStoppedFiring": [],
    "FaenaPipelineFailing": [{"namespace": "data", "pipeline": "nightly"}],
}


class Prom:
    def __init__(self, url: str) -> None:
        self.url = url

    def query(self, expr: str) -> list[dict[str, Any]]:
        q = urllib.parse.urlencode({"query": expr})
        status, body = http_get(f"{self.url}/api/v1/query?{q}")
        assert status == 200, f"{expr}\n{body}"
        data = json.loads(body)
        assert data["status"] == "success", data
        return list(data["data"]["result"])

    def get(self, path: str) -> Any:
        status, body = http_get(self.url + path)
        assert status == 200, body
        return json.loads(body)["data"]


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[dict[str, Any]]:
    need(shutil.which("prometheus") is not None, "prometheus is not installed (apt: prometheus)")
    need(port_open("127.0.0.1", 6379), "Redis is not running on 127.0.0.1:6379")
    import redis

    app_path = write_app(tmp_path)
    with (tmp_path / "obsapp.py").open("a") as f:
        f.write(PIPELINE_SOURCE)
    broker = f"sqlite:///{tmp_path / 'faena.db'}"
    procs: list[subprocess.Popen[str]] = []
    servers = []
    client = redis.Redis.from_url(CELERY_REDIS)
    client.delete("celery_backlog")
    try:
        # a Celery queue with 150 waiting messages (kombu's format: a Redis list)
        need(
            importlib.util.find_spec("celery") is not None,
            "celery is not installed (pip install -e '.[dev]')",
        )
        import celery

        capp = celery.Celery("producer", broker=CELERY_REDIS)
        for i in range(150):
            capp.send_task("legacy.task", args=[i], queue="celery_backlog")

        worker_port, exporter_port, sup_port, prom_port, server_port = (
            free_port() for _ in range(5)
        )
        procs.append(start_worker(
            tmp_path, app_path, broker, "--queues", "etl_pool,dq", "--concurrency", "8",
            "--grace", "1",
            "--metrics-port", str(worker_port), "--metrics-addr", "127.0.0.1",
            stdout=subprocess.DEVNULL,
        ))  # fmt: skip
        procs.append(subprocess.Popen(
            [FAENA, "exporter", "celery", "--broker", CELERY_REDIS, "--queues", "celery_backlog",
             "--port", str(exporter_port), "--addr", "127.0.0.1", "--log-format", "json"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True,
        ))  # fmt: skip
        # the server, whose /metrics adds the pipeline runs read from the store
        procs.append(subprocess.Popen(
            [FAENA, "server", app_path, "--broker", broker, "--port", str(server_port)],
            cwd=tmp_path, env=env_for(tmp_path, broker),
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True,
        ))  # fmt: skip
        # supervisor stand-in: desired workers, and a broker it cannot read
        registry = new_registry()
        DesiredWorkers(registry).set("etl_pool", 3)
        broker_collector(lambda: _unreadable(), registry=registry)
        servers.append(serve(registry, sup_port, "127.0.0.1"))

        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(RULES)],
            "scrape_configs": [
                {"job_name": "faena-worker", "static_configs": [
                    {"targets": [f"127.0.0.1:{worker_port}"], "labels": {"namespace": "data"}}]},
                {"job_name": "celery-exporter", "static_configs": [
                    {"targets": [f"127.0.0.1:{exporter_port}"], "labels": {"namespace": "data"}}]},
                {"job_name": "faena-server", "static_configs": [
                    {"targets": [f"127.0.0.1:{server_port}"], "labels": {"namespace": "data"}}]},
                {"job_name": "faena-supervisor", "static_configs": [
                    {"targets": [f"127.0.0.1:{sup_port}"], "labels": {"namespace": "data"}}]},
            ],
        }  # fmt: skip
        (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
        check = subprocess.run(
            ["promtool", "check", "config", str(tmp_path / "prometheus.yml")],
            capture_output=True, text=True,
        )  # fmt: skip
        assert check.returncode == 0, check.stdout + check.stderr
        procs.append(subprocess.Popen(
            ["prometheus", f"--config.file={tmp_path / 'prometheus.yml'}",
             f"--storage.tsdb.path={tmp_path / 'tsdb'}",
             f"--web.listen-address=127.0.0.1:{prom_port}", "--log.level=warn"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        ))  # fmt: skip
        prom = Prom(f"http://127.0.0.1:{prom_port}")
        wait_for(lambda: http_get(prom.url + "/-/ready")[0] == 200, 20, "Prometheus ready")

        def all_up() -> bool:
            return len([r for r in prom.query("up == 1")]) == 4

        wait_for(all_up, 30, "four targets up (first scrape takes ~5 s)")
        yield {"tmp": tmp_path, "app": app_path, "broker": broker, "prom": prom,
               "sup": f"127.0.0.1:{sup_port}"}  # fmt: skip
    finally:
        for server in servers:
            server.close()
        for proc in reversed(procs):
            stop_worker(proc)
        client.delete("celery_backlog")
        client.close()


def _unreadable() -> Any:
    raise ConnectionError("the supervisor stand-in's broker is unreachable")


# a pipeline on the worker's dq queue, outside the pools the load saturates: one run fails
# at its check, one succeeds (the failed count rises from 0 between scrapes: the alert's delta)
PIPELINE_SOURCE = """

from faena.pipelines import Pipeline, param


@app.task(name="flow.extract", queue="dq", retries=0)
def extract(seconds):
    time.sleep(seconds)


@app.task(name="flow.verify", queue="dq", retries=0)
def verify(ok):
    if not ok:
        raise ValueError("the extract's row count is off")


nightly = Pipeline(app, "nightly", key="{run}")
extracted = nightly.step("extract", extract, kwargs={"seconds": 3})
extracted >> nightly.step("verify", verify, kwargs={"ok": param("ok")})
"""

LOAD = """
import time
import {module} as m
a = m.app
for _ in range(4):
    a.enqueue("etl.long", [60])            # holds every slot of etl_pool (4)
a.enqueue("reports.build", queue="reports")  # a queue no worker consumes
for round in range(8):  # > 30 failures: rate(...[5m]) divides by the whole 5 minutes
    for i in range(6):
        a.enqueue("etl.flaky", [f"t{{round}}{{i}}"], queue="dq", pool="dq_pool")
        a.enqueue("dq.check", [f"t{{round}}{{i}}"], {{"ok": i > 1}})
    time.sleep(0.4)
m.nightly.run(run="bad", ok=False)
m.nightly.run(run="good", ok=True)
"""


def test_dashboards_and_alerts_against_live_series(stack: dict[str, Any]) -> None:
    prom: Prom = stack["prom"]
    tmp = stack["tmp"]
    module = stack["app"].split(":")[0]
    subprocess.run(
        [python(), "-c", LOAD.format(module=module)],
        cwd=tmp, env=env_for(tmp, stack["broker"]), check=True, timeout=60,
    )  # fmt: skip

    def settled() -> bool:
        dead = prom.query('faena_jobs_dead{queue="dq"}')
        ended = prom.query('faena_pipeline_runs{pipeline="nightly", state=~"failed|succeeded"}')
        return (
            bool(dead)
            and float(dead[0]["value"][1]) >= 16
            and sorted(float(r["value"][1]) for r in ended) == [1.0, 1.0]
        )

    wait_for(settled, 30, "the load's dead jobs and the pipeline's runs to be scraped")
    time.sleep(3)  # a few more scrapes, so every rate() has points after the load

    # every rule loaded and healthy
    rules = [r for g in prom.get("/api/v1/rules")["groups"] for r in g["rules"]]
    shipped = [r["alert"] for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"]]
    assert sorted(r["name"] for r in rules) == sorted(shipped) == sorted(EXPECTED)
    assert all(r["health"] == "ok" for r in rules), rules

    # every alert expression returns the series it should
    for rule in rules:
        name, expr = rule["name"], rule["query"]
        if name in LOWERED:
            old, new = LOWERED[name]
            assert old in expr
            expr = expr.replace(old, new)
        got = prom.query(expr)
        labels = [{k: v for k, v in r["metric"].items()} for r in got]
        want = [{**w, "instance": stack["sup"]} if w.get("instance") == "BROKEN" else w
                for w in EXPECTED[name]]  # fmt: skip
        assert labels == want, (name, expr, labels)
    firing = {a["labels"]["alertname"] for a in prom.get("/api/v1/alerts")["alerts"]}
    assert "FaenaDeadJobsGrowing" in firing  # no `for:`: fires at once
    assert "HighWorkerFailureRate" in firing  # pending (for: 5m) counts as listed

    # every dashboard query: valid, and non-empty unless it reads cluster-only metrics
    empty_ok = 0
    for board in dashboards.dashboards().values():
        for panel in board["panels"]:
            if panel["type"] == "logs":
                continue  # LogQL: tests/integration/test_logql_ready.py
            for target in panel["targets"]:
                expr = target["expr"]
                for var, value in VARS.items():
                    expr = expr.replace(var, value)
                result = prom.query(expr)
                cluster_only = re.search(
                    r"\b(" + "|".join(dashboards.CLUSTER_ONLY_PREFIXES) + r")\w+", expr
                )
                if cluster_only:
                    empty_ok += 1
                    assert result == [], (panel["title"], expr)
                    continue
                assert result, (panel["title"], target["refId"], expr)
    assert empty_ok == 3  # container CPU, container memory, HPA desired replicas

    # a few values pinned: queue depth from the exporter is not multiplied by scrapers
    backlog = prom.query('max by (queue) (celery_queue_length{queue="celery_backlog"})')
    assert float(backlog[0]["value"][1]) == 150
    pool = prom.query('max by (pool) (faena_pool_slots_used{pool="etl_pool"})')
    assert float(pool[0]["value"][1]) == 4
    desired = prom.query("sum by (pool) (faena_desired_workers)")
    assert [(d["metric"]["pool"], d["value"][1]) for d in desired] == [("etl_pool", "3")]

    # FAENA_DOCS_IMG=docs/img: render two panels from this run's real data for the docs
    out = os.environ.get("FAENA_DOCS_IMG")
    if out:
        _plot_panels(prom, Path(out) / "obs-queue-depth.png")


def _plot_panels(prom: Prom, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    end = time.time()
    panels = [
        ("Queue depth", 'max by (queue) (celery_queue_length{namespace="data"})', "{queue}"),
        ("Throughput (jobs/s)",
         'sum by (status) (rate(worker_tasks_processed_total{namespace="data"}[5s]))', "{status}"),
    ]  # fmt: skip
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.6))
    for ax, (title, expr, legend) in zip(axes, panels, strict=True):
        q = urllib.parse.urlencode({"query": expr, "start": end - 40, "end": end, "step": "1"})
        status, body = http_get(f"{prom.url}/api/v1/query_range?{q}")
        assert status == 200, body
        for series in json.loads(body)["data"]["result"]:
            ts = [float(t) - end for t, _ in series["values"]]
            ax.plot(ts, [float(v) for _, v in series["values"]],
                    label=legend.format(**series["metric"]))  # fmt: skip
        ax.set_title(title)
        ax.set_xlabel("seconds (test run)")
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
