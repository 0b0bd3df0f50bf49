"""DESIGN section 2 with real worker processes and real signals."""

from __future__ import annotations

import signal
import subprocess
import time
from collections import defaultdict

import pytest

from faena.core.states import JobState
from tests.acceptance.conftest import Cluster, max_overlap, wait_until

pytestmark = pytest.mark.slow


def states(cluster: Cluster) -> dict[JobState, int]:
    counts: dict[JobState, int] = defaultdict(int)
    for (_q, state), n in cluster.app().broker.count_by_state().items():
        counts[state] += n
    return counts


def test_sigkill_loses_nothing_and_duplicates_nothing(cluster: Cluster) -> None:
    lease = 4.0
    cluster.env["ACC_LEASE"] = str(lease)
    app = cluster.app()
    handles = app.enqueue_many("sleep", [([2], {}) for _ in range(200)], queue="acc")
    order = {h.id: n for n, h in enumerate(handles)}
    victim = cluster.worker("--concurrency", "4")
    cluster.worker("--concurrency", "4")
    time.sleep(3)
    victim.send_signal(signal.SIGKILL)
    killed_at = time.time()
    victim.wait(10)
    wait_until(lambda: states(cluster).get(JobState.SUCCEEDED, 0) == 200, 150, "200 successes")

    recs = cluster.records()
    starts: dict[str, list[tuple[int, int, float]]] = defaultdict(list)
    for kind, job_id, attempt, pid, ts in recs:
        if kind == "start":
            starts[job_id].append((attempt, pid, ts))
    assert set(starts) == set(order), "every job ran"
    ends = {(j, a) for kind, j, a, _p, _t in recs if kind == "end"}
    rerun = {j for j, s in starts.items() if len(s) > 1}
    assert rerun, "the killed worker had jobs in flight"
    for job_id in rerun:
        first, *later = sorted(starts[job_id])
        assert first[1] == victim.pid, "only the killed worker's jobs ran twice"
        assert (job_id, first[0]) not in ends, "a re-run job had not finished its first run"
        assert all(s[1] != victim.pid for s in later)
        # runnable again within one lease (plus the survivor's 2 s jobs freeing a slot, plus
        # scheduling slack on a loaded 2-core machine)
        assert later[0][2] - killed_at < lease + 2 + 3
    # they keep their place: once the lease has surely run out, no job enqueued after a
    # re-run job starts before it
    first_start = {j: min(ts for (_a, _p, ts) in s) for j, s in starts.items()}
    settled = killed_at + lease + 0.5
    for job_id in rerun:
        restarted = sorted(starts[job_id])[1][2]
        overtaken = [
            j
            for j, ts in first_start.items()
            if order[j] > order[job_id] and settled < ts < restarted
        ]
        assert not overtaken, f"{len(overtaken)} later jobs started before re-run {job_id}"
    for job_id in rerun:
        job = app.broker.get(job_id)
        assert job is not None and job.state is JobState.SUCCEEDED and job.attempt == 2


def test_sigterm_drains_then_releases_without_consuming_attempts(cluster: Cluster) -> None:
    app = cluster.app()
    handles = app.enqueue_many("sleep", [([5], {}) for _ in range(4)], queue="acc")
    w = cluster.worker("--concurrency", "4", "--grace", "2")
    wait_until(lambda: len(cluster.records()) == 4, 20, "4 jobs started")
    t0 = time.monotonic()
    w.send_signal(signal.SIGTERM)
    assert w.wait(10) == 0
    assert time.monotonic() - t0 < 2 + 1.5, "exit before the grace ends, plus a margin"
    log = cluster.log(0)
    assert log.count('"event": "job.released"') == 4
    assert '"event": "worker.stopping"' in log
    for h in handles:
        job = app.broker.get(h.id)
        assert job is not None
        assert job.state is JobState.QUEUED and job.tries == 0 and job.attempt == 1
    cluster.worker("--concurrency", "4")
    for h in handles:
        assert h.wait(timeout=30) == "slept"
        job = h.refresh()
        assert job.attempt == 2 and job.tries == 1, "the release consumed no attempt"


def test_a_second_signal_releases_at_once_and_the_worker_exits_0(cluster: Cluster) -> None:
    app = cluster.app()
    [handle] = app.enqueue_many("sleep", [([30], {})], queue="acc")
    w = cluster.worker("--concurrency", "1", "--grace", "20")
    wait_until(lambda: len(cluster.records()) == 1, 20, "the job started")
    w.send_signal(signal.SIGTERM)
    wait_until(lambda: '"worker.stopping"' in cluster.log(0), 10, "the worker draining")
    for _ in range(20):  # the second, and more while it releases and exits
        w.send_signal(signal.SIGTERM)
        time.sleep(0.001)
    try:
        assert w.wait(10) == 0, "released at once, exit 0 whatever signals came meanwhile"
    except subprocess.TimeoutExpired:
        raise AssertionError("the worker kept draining after a second SIGTERM") from None
    assert '"event": "job.released"' in cluster.log(0)
    job = app.broker.get(handle.id)
    assert job is not None and job.state is JobState.QUEUED and job.tries == 0


@pytest.mark.parametrize("limit", ["pool", "parallelism"])
def test_limits_hold_across_worker_processes(cluster: Cluster, limit: str) -> None:
    if limit == "pool":
        cluster.env["ACC_POOL_SIZE"] = "3"
        task = "pooled"
    else:
        cluster.env["ACC_POOL_SIZE"] = "50"
        cluster.env["ACC_PARALLELISM"] = "3"
        task = "sleep"
    app = cluster.app()
    pool = "limited" if limit == "pool" else "default_pool"
    handles = app.enqueue_many(task, [([0.3], {}) for _ in range(36)], queue="acc", pool=pool)
    for _ in range(3):
        cluster.worker("--concurrency", "4")
    for h in handles:
        h.wait(timeout=90)
    assert max_overlap(cluster.records()) == 3


def test_process_timeout_kills_and_exit_counts_attempts(cluster: Cluster) -> None:
    app = cluster.app()
    # the producer does not import the tasks: it gives their options by hand
    spin = app.enqueue("spin", queue="acc", retries=0, timeout=1)
    suicide = app.enqueue("suicide", queue="acc", retries=2)
    cluster.worker("--concurrency", "2")
    with pytest.raises(Exception, match="TimeoutError"):
        spin.wait(timeout=30)
    job = spin.refresh()
    assert job.state is JobState.DEAD and job.error is not None
    assert job.error.type == "TimeoutError"
    with pytest.raises(Exception, match="ProcessExited"):
        suicide.wait(timeout=30)
    job = suicide.refresh()
    assert job.state is JobState.DEAD and job.tries == 3  # retries=2 -> 3 attempts
    assert len([r for r in cluster.records() if r[1] == suicide.id]) == 3


def test_job_that_kills_its_worker_ends_dead(cluster: Cluster) -> None:
    cluster.env["ACC_LEASE"] = "1"
    app = cluster.app()
    h = app.enqueue("suicide_thread", queue="acc", retries=1)
    for _ in range(4):  # a supervisor would restart the worker each time it dies
        if h.refresh().state is JobState.DEAD:
            break
        w = cluster.worker("--concurrency", "1")
        wait_until(
            lambda w=w: w.poll() is not None or h.refresh().state is JobState.DEAD,
            30,
            "the worker to die or the job to end dead",
        )
        time.sleep(1.2)
    wait_until(lambda: h.refresh().state is JobState.DEAD, 20, "the job to end dead", 0.2)
    job = h.refresh()
    assert job.error is not None and job.error.type == "WorkerLost"
    assert job.tries == 2  # retries=1 -> 2 attempts, each one killed its worker
