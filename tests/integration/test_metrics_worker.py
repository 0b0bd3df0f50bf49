"""A real worker (in a thread, SQLite broker) serving /metrics: counters, the histogram, broker
gauges, probes, and jobs run in child processes recorded by the parent."""

from __future__ import annotations

import importlib
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from tests.integration.test_metrics_support import http_get, wait_for, write_app

from faena.observability.metrics import start_worker_metrics
from faena.worker import Worker


def scrape(url: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    status, text = http_get(url + "/metrics")
    assert status == 200, text
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for f in text_string_to_metric_families(text)
        for s in f.samples
    }


def get(m: dict[Any, float], name: str, **labels: str) -> float:
    return m.get((name, frozenset(labels.items())), 0.0)


@pytest.fixture
def running(tmp_path: Path) -> Iterator[tuple[Any, Worker, str]]:
    name = f"obsapp_{uuid.uuid4().hex[:8]}"
    app_path = write_app(tmp_path, name)
    sys.path.insert(0, str(tmp_path))
    module = importlib.import_module(name)
    app = module.app
    app.use_broker(f"sqlite:///{tmp_path / 'faena.db'}")
    app.import_path = app_path
    worker = Worker(app, queues=["etl_pool", "dq"], concurrency=4, install_signals=False)
    server = start_worker_metrics(app, worker, 0, "127.0.0.1")
    thread = threading.Thread(target=worker.run, daemon=True)
    try:
        assert http_get(server.url + "/readyz")[0] == 503  # not claiming yet
        thread.start()
        wait_for(lambda: http_get(server.url + "/readyz")[0] == 200, 10, "readiness")
        yield app, worker, server.url
    finally:
        worker.stop(graceful=False)
        thread.join(20)
        server.close()
        app.close()
        sys.path.remove(str(tmp_path))


@pytest.mark.slow
def test_worker_metrics_count_every_outcome(running: tuple[Any, Worker, str]) -> None:
    app, _, url = running
    app.enqueue("etl.load", ["users"], {"ms": 1200})
    for i in range(3):
        app.enqueue("etl.load", [f"t{i}"])
    app.enqueue("etl.flaky", ["orders"])
    app.enqueue("dq.check", ["users"], {"ok": False})
    app.enqueue("etl.isolated", [21])
    app.enqueue("etl.isolated", [-1])
    app.enqueue("etl.stuck", [])

    def done() -> bool:
        m = scrape(url)
        total = sum(v for (n, _), v in m.items() if n == "worker_tasks_processed_total")
        return total >= 10  # 4 loads, 2 flaky attempts, 1 check, 2 isolated, 1 stuck

    wait_for(done, 60, "all attempts to end")
    m = scrape(url)
    p = "worker_tasks_processed_total"
    assert get(m, p, queue="etl_pool", task="etl.load", status="succeeded") == 4
    assert get(m, p, queue="etl_pool", task="etl.flaky", status="failed") == 1
    assert get(m, p, queue="etl_pool", task="etl.flaky", status="succeeded") == 1
    assert get(m, p, queue="dq", task="dq.check", status="dead") == 1
    # process isolation: the children's outcomes are recorded by the parent worker
    assert get(m, p, queue="etl_pool", task="etl.isolated", status="succeeded") == 1
    assert get(m, p, queue="etl_pool", task="etl.isolated", status="dead") == 1
    assert get(m, p, queue="etl_pool", task="etl.stuck", status="dead") == 1
    f = "worker_task_failures_total"
    assert get(m, f, queue="etl_pool", task="etl.flaky", error_type="ConnectionError") == 1
    assert get(m, f, queue="dq", task="dq.check", error_type="ValueError") == 1
    assert get(m, f, queue="etl_pool", task="etl.isolated", error_type="ArithmeticError") == 1
    assert get(m, f, queue="etl_pool", task="etl.stuck", error_type="TimeoutError") == 1
    h = "worker_task_duration_seconds"
    assert get(m, h + "_count", queue="etl_pool", task="etl.load") == 4
    assert get(m, h + "_bucket", queue="etl_pool", task="etl.load", le="1.0") == 3
    assert get(m, h + "_bucket", queue="etl_pool", task="etl.load", le="2.5") == 4
    assert get(m, h + "_count", queue="etl_pool", task="etl.isolated") == 2
    # scrape-time broker facts and worker state
    assert get(m, "faena_jobs_dead", queue="dq") == 1
    assert get(m, "faena_jobs_dead", queue="etl_pool") == 2
    assert get(m, "celery_queue_length", queue="etl_pool") == 0
    assert get(m, "faena_pool_slots", pool="etl_pool") == 4
    assert get(m, "faena_pool_slots", pool="dq_pool") == 2
    assert get(m, "faena_workers", state="ready") == 1
    assert get(m, "faena_queue_workers", queue="dq") == 1
    assert get(m, "faena_worker_concurrency") == 4
    assert get(m, "faena_broker_up") == 1
    assert get(m, "process_resident_memory_bytes") > 0
    for name, labels in m:
        assert not {"job_id", "worker", "task_id"} & {k for k, _ in labels}, name


@pytest.mark.slow
def test_gauges_follow_a_backlog_and_the_drain(running: tuple[Any, Worker, str]) -> None:
    app, worker, url = running
    app.enqueue("etl.long", [1.5])
    wait_for(lambda: get(scrape(url), "faena_worker_jobs_running") == 1, 10, "a running job")
    m = scrape(url)
    assert get(m, "faena_pool_slots_used", pool="etl_pool") == 1
    assert get(m, "faena_jobs_running", queue="etl_pool") == 1
    worker.stop()  # graceful: readiness flips at once, the running job finishes
    wait_for(lambda: http_get(url + "/readyz")[0] == 503, 5, "readiness to drop")
    assert get(scrape(url), "faena_workers", state="draining") == 1
    assert http_get(url + "/healthz")[0] == 200
    wait_for(lambda: worker.stopped.is_set(), 10, "the drain")
    m = scrape(url)
    assert get(m, "faena_workers", state="stopped") == 1
    assert get(m, "faena_queue_workers", queue="etl_pool") == 0
    p = "worker_tasks_processed_total"
    assert get(m, p, queue="etl_pool", task="etl.long", status="succeeded") == 1
    assert http_get(url + "/nope")[0] == 404
