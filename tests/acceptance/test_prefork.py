"""``faena worker --processes N``: several worker processes under one supervisor, for real."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from faena.core.states import JobState
from tests.acceptance.conftest import ROOT, Cluster, max_overlap, wait_until

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
