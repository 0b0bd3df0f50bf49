"""``faena worker --prefetch``: jobs claimed ahead of a free slot keep DESIGN section 2, with
real worker processes and real signals on every broker that several processes share."""

from __future__ import annotations

import json
import signal
import time
from collections import defaultdict

import pytest

from faena.core.states import JobState
from tests.acceptance.conftest import Cluster, max_overlap, wait_until
from tests.acceptance.test_workers import states

pytestmark = pytest.mark.slow


def test_sigterm_releases_the_prefetched_jobs_at_once_and_lets_the_running_one_finish(
    cluster: Cluster,
) -> None:
    app = cluster.app()
    first, *rest = app.enqueue_many("sleep", [([3], {}) for _ in range(5)], queue="acc")
    w = cluster.worker("--concurrency", "1", "--prefetch", "3", "--grace", "20")
    wait_until(lambda: len(cluster.records()) == 1, 20, "the first job started")
    wait_until(lambda: states(cluster).get(JobState.RUNNING) == 4, 10, "3 jobs prefetched")
    w.send_signal(signal.SIGTERM)
    # seen only while the first job runs: released after it, the count would go 3, then 0
    wait_until(lambda: states(cluster).get(JobState.RUNNING) == 1, 10, "the prefetch released")
    assert w.poll() is None, "the running job still has its grace"
    assert w.wait(15) == 0
    assert [kind for kind, *_ in cluster.records()] == ["start", "end"]
    assert first.refresh().state is JobState.SUCCEEDED
    for h in rest:
        job = h.refresh()
        assert job.state is JobState.QUEUED and job.tries == 0, "no attempt consumed"
    lines = [json.loads(line) for line in cluster.log(0).splitlines() if line.startswith("{")]
    released = [rec for rec in lines if rec.get("event") == "job.released"]
    assert len(released) == 3 and all(rec.get("prefetched") is True for rec in released)


def test_sigkill_with_prefetch_loses_nothing(cluster: Cluster) -> None:
    """The killed worker's prefetched jobs, never started, come back after one lease like
    its running ones; each runs to the end exactly once after that."""
    cluster.env["ACC_LEASE"] = "3"
    app = cluster.app()
    handles = app.enqueue_many("sleep", [([0.5], {}) for _ in range(60)], queue="acc")
    victim = cluster.worker("--concurrency", "2", "--prefetch", "4")
    wait_until(lambda: len(cluster.records()) >= 4, 20, "the victim at work")
    cluster.worker("--concurrency", "2")
    time.sleep(1)
    victim.send_signal(signal.SIGKILL)
    victim.wait(10)
    wait_until(lambda: states(cluster).get(JobState.SUCCEEDED, 0) == 60, 120, "60 successes")
    starts: dict[str, list[int]] = defaultdict(list)
    ends: dict[str, int] = defaultdict(int)
    for kind, job_id, _attempt, pid, _ts in cluster.records():
        if kind == "start":
            starts[job_id].append(pid)
        else:
            ends[job_id] += 1
    assert set(starts) == {h.id for h in handles}, "every job ran"
    assert all(n == 1 for n in ends.values()) and len(ends) == 60, "each ran to its end once"
    cut_short = {j for j, pids in starts.items() if pids[0] == victim.pid and len(pids) == 2}
    retaken = {h.id for h in handles if h.refresh().attempt == 2}
    assert retaken > cut_short, "prefetched jobs that never started came back too"


def test_a_pool_limit_holds_across_prefetching_workers(cluster: Cluster) -> None:
    cluster.env["ACC_POOL_SIZE"] = "3"
    app = cluster.app()
    jobs = [([0.2], {}) for _ in range(30)]
    handles = app.enqueue_many("pooled", jobs, queue="acc", pool="limited")
    for _ in range(3):
        cluster.worker("--concurrency", "4", "--prefetch", "4")
    for h in handles:
        h.wait(timeout=90)
    assert max_overlap(cluster.records()) == 3
