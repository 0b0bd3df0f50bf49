"""``faena worker --processes N``: several worker processes under one supervisor, for real."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request

import pytest

from faena.core.states import JobState
from tests.acceptance.conftest import ROOT, Cluster, max_overlap, wait_until
from tests.redis_server import free_port

pytestmark = pytest.mark.slow


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_processes_share_the_slots_and_stop_together(cluster: Cluster) -> None:
    app = cluster.app()
    quick = app.enqueue_many("sleep", [([0.05], {}) for _ in range(40)], queue="acc")
    sup = cluster.worker("--processes", "2", "--concurrency", "4", "--grace", "1")
    for h in quick:
        assert h.wait(timeout=60) == "slept"
    pids = {pid for kind, _j, _a, pid, _t in cluster.records() if kind == "start"}
    assert len(pids) == 2 and sup.pid not in pids, "two child processes ran the jobs"
    assert max_overlap(cluster.records()) <= 4, "the processes share --concurrency 4"

    slow = app.enqueue_many("sleep", [([30], {}) for _ in range(4)], queue="acc")
    wait_until(lambda: len(cluster.records()) == 2 * 40 + 4, 30, "4 long jobs started")
    t0 = time.monotonic()
    sup.send_signal(signal.SIGTERM)
    assert sup.wait(15) == 0
    assert time.monotonic() - t0 < 1 + 5, "the children drained for --grace 1, then exited"
    assert not any(_alive(pid) for pid in pids)
    log = cluster.log(0)
    assert log.count('"event": "job.released"') == 4
    assert log.count('"event": "worker.stopped"') == 2
    for h in slow:
        job = app.broker.get(h.id)
        assert job is not None
        assert job.state is JobState.QUEUED and job.tries == 0, "released, no attempt used"


def test_a_dead_process_is_replaced_and_its_jobs_come_back(cluster: Cluster) -> None:
    cluster.env["ACC_LEASE"] = "3"
    app = cluster.app()
    handles = app.enqueue_many("sleep", [([1.5], {}) for _ in range(4)], queue="acc")
    sup = cluster.worker("--processes", "2", "--concurrency", "2", "--grace", "1")
    wait_until(lambda: len(cluster.records()) >= 2, 30, "2 jobs started")
    victim = cluster.records()[0][3]
    os.kill(victim, signal.SIGKILL)
    for h in handles:
        assert h.wait(timeout=60) == "slept"
    pids = {pid for kind, _j, _a, pid, _t in cluster.records() if kind == "start"}
    assert len(pids - {victim}) >= 2, "a new process took the dead one's place"
    assert sup.poll() is None, "the supervisor keeps running"
    log = cluster.log(0)
    assert '"event": "worker.process_exited"' in log and '"exit_code": -9' in log
    rerun = [h for h in handles if h.refresh().attempt == 2]
    assert rerun, "the killed process's job ran again after its lease"
    sup.send_signal(signal.SIGTERM)
    assert sup.wait(15) == 0


def test_a_bad_app_path_ends_the_supervisor_with_the_childs_error(cluster: Cluster) -> None:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "faena.cli.main",
            "worker",
            "no_such_module_for_faena:app",
            "--processes",
            "2",
            "--concurrency",
            "2",
            "--log-format",
            "json",
        ],
        cwd=ROOT,
        env=cluster.env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode != 0
    assert '"status": "start_failed"' in out.stdout + out.stderr
    assert "no_such_module_for_faena" in out.stdout + out.stderr


def test_the_processes_stop_when_the_supervisor_is_killed(cluster: Cluster) -> None:
    app = cluster.app()
    handles = app.enqueue_many("sleep", [([30], {}) for _ in range(2)], queue="acc")
    sup = cluster.worker("--processes", "2", "--concurrency", "2", "--grace", "1")
    wait_until(lambda: len(cluster.records()) == 2, 30, "2 jobs started")
    pids = {pid for _k, _j, _a, pid, _t in cluster.records()}
    sup.send_signal(signal.SIGKILL)  # no forwarding: Linux sends the children SIGTERM
    sup.wait(10)
    wait_until(lambda: not any(_alive(pid) for pid in pids), 15, "the children to exit")
    assert cluster.log(0).count('"event": "job.released"') == 2
    for h in handles:
        job = app.broker.get(h.id)
        assert job is not None and job.state is JobState.QUEUED, "released, runnable at once"


def _scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        text = r.read().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for fam in text_string_to_metric_families(text)
        for s in fam.samples
    }


def _ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=10) as r:
            return bool(r.status == 200)
    except OSError:
        return False


def test_the_supervisor_serves_its_processes_metrics_merged(cluster: Cluster) -> None:
    port = free_port()
    app = cluster.app()
    app.enqueue_many("sleep", [([0], {}) for _ in range(5)], queue="acc", delay=3600)
    sup = cluster.worker(
        "--processes", "2", "--concurrency", "2", "--metrics-port", str(port),
        "--metrics-addr", "127.0.0.1", "--grace", "1",
    )  # fmt: skip
    wait_until(lambda: _ready(port), 30, "both processes ready")
    done = app.enqueue_many("sleep", [([0.02], {}) for _ in range(20)], queue="acc")
    for h in done:
        assert h.wait(timeout=60) == "slept"
    succeeded = ("worker_tasks_processed_total", (("queue", "acc"), ("status", "succeeded"),
                                                  ("task", "sleep")))  # fmt: skip
    count = ("worker_task_duration_seconds_count", (("queue", "acc"), ("task", "sleep")))
    wait_until(lambda: _scrape(port).get(succeeded) == 20, 15, "20 attempts counted")
    m = _scrape(port)
    assert m[count] == 20, "the histograms of both processes, summed"
    assert m[("faena_workers", (("state", "ready"),))] == 2, "each process is a worker"
    assert m[("faena_worker_concurrency", ())] == 2, "the shares add up to --concurrency"
    # the broker's figures are the same from every process: taken once, not summed
    assert m[("faena_jobs_scheduled", (("queue", "acc"),))] == 5
    assert not any(name.endswith("_created") for name, _ in m), "creation times are dropped"
    pids = {pid for kind, _j, _a, pid, _t in cluster.records() if kind == "start"}
    assert len(pids) == 2, "both processes ran jobs"

    victim = next(iter(pids))
    os.kill(victim, signal.SIGKILL)
    # until its successor is up, the dead process's counts stand; after, they are kept
    assert _scrape(port)[succeeded] == 20
    wait_until(lambda: _ready(port), 30, "the replacement process ready")
    more = app.enqueue_many("sleep", [([0.02], {}) for _ in range(10)], queue="acc")
    for h in more:
        assert h.wait(timeout=60) == "slept"
    wait_until(lambda: _scrape(port).get(succeeded) == 30, 15, "30 attempts counted")
    assert _scrape(port)[("faena_workers", (("state", "ready"),))] == 2

    sup.send_signal(signal.SIGTERM)
    assert sup.wait(15) == 0
