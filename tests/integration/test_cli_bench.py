"""``faena bench``: a real worker process drains the benchmark's jobs on each backend and
the summary adds up; bad input and a worker that cannot run give clear errors."""

from __future__ import annotations

import importlib.util
import json
import time
import uuid
from pathlib import Path

import pytest
from click.testing import CliRunner
from tests.conftest import PG_URL, REDIS_URL, need, port_open

from faena import App
from faena.benchmark.run import BenchError, _Worker
from faena.cli.main import cli
from faena.core.states import JobState


def _url(kind: str, tmp_path: Path) -> str:
    tag = f"fbench{uuid.uuid4().hex[:8]}"
    if kind == "sqlite":
        return f"sqlite:///{tmp_path / 'bench.db'}"
    if kind == "postgres":
        need(importlib.util.find_spec("psycopg") is not None, "psycopg is not installed")
        need(port_open("127.0.0.1", 5432), "PostgreSQL is not running on 127.0.0.1:5432")
        return f"{PG_URL}?schema={tag}"
    need(importlib.util.find_spec("redis") is not None, "redis-py is not installed")
    need(port_open("127.0.0.1", 6379), "Redis is not running on 127.0.0.1:6379")
    return f"{REDIS_URL}?prefix={tag}"


@pytest.mark.parametrize("kind", ["sqlite", "postgres", "redis"])
def test_bench_drains_every_job_and_reports_each_phase(kind: str, tmp_path: Path) -> None:
    url = _url(kind, tmp_path)
    done = CliRunner().invoke(
        cli, ["bench", "--broker", url, "--jobs", "300", "--latency-samples", "10", "--json"]
    )
    app = App(broker=url)
    try:
        assert done.exit_code == 0, done.stderr + done.stdout
        report = json.loads(done.stdout)
        assert report["jobs"] == 600  # 300 one by one, 300 in a batch
        assert report["latency_samples"] == 10
        for rate in ("enqueue_one_per_s", "enqueue_batch_per_s", "drain_per_s"):
            assert report[rate] > 0, rate
        assert report["latency_p50_ms"] <= report["latency_p95_ms"] <= report["latency_p99_ms"]
        counts = app.broker.count_by_state()
        assert counts == {(report["queue"], JobState.SUCCEEDED): 610}  # and nothing else
        assert "drain: 600 jobs" in done.stderr  # progress on stderr, stdout stays JSON
    finally:
        destroy = getattr(app.broker, "destroy", None)
        if callable(destroy):
            destroy()
        app.close()


def test_bench_refuses_nonsense_and_names_the_bound() -> None:
    done = CliRunner().invoke(cli, ["bench", "--broker", "sqlite:///x.db", "--jobs", "5"])
    assert done.exit_code == 2
    assert "--jobs" in done.stderr and "100" in done.stderr
    done = CliRunner().invoke(cli, ["bench", "--jobs", "500"], env={"FAENA_BROKER_URL": None})
    assert done.exit_code == 2 and "--broker" in done.stderr


def test_a_broker_that_cannot_be_opened_is_a_clear_error(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'missing' / 'bench.db'}"
    done = CliRunner().invoke(cli, ["bench", "--broker", url])
    assert done.exit_code == 1
    assert "mkdir -p" in done.stderr and "Traceback" not in done.stderr


def test_a_worker_that_dies_is_reported_with_its_output() -> None:
    worker = _Worker("nosuch://broker", "faena-bench-test", 1)
    try:
        deadline = time.monotonic() + 30
        while worker.proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        with pytest.raises(BenchError, match=r"exited with code [12].*nosuch"):
            worker.check_alive()
    finally:
        worker.stop()
