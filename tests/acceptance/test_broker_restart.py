"""The broker restarts under real ``faena worker`` processes (DESIGN section 2.1 to 2.3).

1,000 short jobs are consumed by two worker processes (concurrency 4). When about half are
done the broker goes away and comes back: PostgreSQL through ``pg_ctlcluster``, or a Redis
server the test owns (AOF, ``appendfsync always``) stopped with SIGTERM and started again on
the same port and directory. The test never touches the workers: they must ride the outage out
by themselves.

What may happen, and what may not:

* Every job ends ``succeeded``; none is lost; both workers are still alive and stop cleanly.
* Delivery across an outage is at-least-once. A claim whose reply was lost leaves its jobs
  leased to nobody until the lease runs out (they then start with a higher attempt). A
  completion held by its worker while the broker was away can come too late: the lease ran
  out meanwhile, the job was reaped and claimed again, and the broker refuses the stale
  result (fencing on job id and attempt). So a job may run twice although its first worker is
  alive, but only after its lease expired: each further start comes at least about one lease
  after the previous one, with a higher attempt, and the broker never accepted the success of
  the earlier attempt. A second run inside the lease breaks "no duplicate while alive".

Two kinds of outage:

* a plain restart (``pg_ctlcluster ... restart``; Redis SIGTERM then start at once), with a
  lease comfortably longer than the restart takes;
* an outage longer than a short (3 s) lease, and for Redis one longer than its client's retry
  budget (about 20 s) so the worker itself sees ``BrokerError`` and keeps its results. These
  caught a real bug (fixed): a call retried after the outage granted a lease computed from the
  time of its first try, already expired, so the job was reaped and run again at once while
  its worker still ran it. The brokers now read the clock at every try.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from faena.app import App
from faena.core.states import JobState
from tests.acceptance.conftest import ROOT, Cluster, broker_url, wait_until
from tests.conftest import need
from tests.redis_server import RedisServer

pytestmark = [pytest.mark.slow, pytest.mark.serial]

JOBS = 1000
JOB_SECONDS = 0.05
WORKERS = 2
CONCURRENCY = 4
SHORT_LEASE = 3.0  # re-runs after a lease expiry come back this soon
RESTART_LEASE = 10.0  # longer than a restart takes, even on a loaded machine
LONG_OUTAGE = SHORT_LEASE + 3.0
REDIS_PAST_RETRIES = 25.0  # the Redis client gives up after about 20 s of retries
# A lease starts at the claim, a moment before the job's ``start`` record; on a loaded 2-core
# machine that moment (thread hand-off, record write) can take a few hundred milliseconds.
LEASE_SLACK = 0.75
FINISH_TIMEOUT = 75.0  # generous: a loaded machine, plus re-runs after a lease

Record = tuple[str, str, int, int, float]  # kind, job id, attempt, pid, time


class DuplicateWhileAlive(AssertionError):
    """A job started again inside the lease of its previous attempt."""


def make_cluster(url: str, tmp_path: Path) -> Cluster:
    env = dict(
        os.environ,
        ACC_BROKER=url,
        ACC_RECORD=str(tmp_path / "record.log"),
        PYTHONPATH=os.pathsep.join([str(ROOT / "src"), str(ROOT)]),  # this tree's faena
        PYTHONUNBUFFERED="1",
    )
    return Cluster(url, tmp_path / "record.log", env, tmp_path)


# PostgreSQL -----------------------------------------------------------------------------------
def pg_ctlcluster(action: str) -> None:
    """``pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main ACTION``"""
    version = sorted(os.listdir("/etc/postgresql"))[-1]
    subprocess.run(
        ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", action],
        check=True,
        capture_output=True,
        timeout=120,
    )


def postgres_outage(down: float) -> None:
    if down <= 0:
        pg_ctlcluster("restart")
        return
    pg_ctlcluster("stop")
    try:
        time.sleep(down)
    finally:
        pg_ctlcluster("start")


@pytest.fixture
def pg_cluster(tmp_path: Path) -> Iterator[Cluster]:
    need(
        shutil.which("pg_ctlcluster") is not None and os.path.isdir("/etc/postgresql"),
        "pg_ctlcluster is needed to restart PostgreSQL",
    )
    need(os.geteuid() == 0, "restarting PostgreSQL needs root")
    cluster = make_cluster(broker_url("postgres", tmp_path), tmp_path)  # a fresh schema
    yield cluster
    used = cluster._app is not None
    cluster.stop_all()
    if used:
        from faena.brokers.postgres import PostgresBroker

        broker = PostgresBroker.from_url(cluster.url)
        broker.destroy()
        broker.close()


# Redis ----------------------------------------------------------------------------------------
@pytest.fixture
def redis_cluster(redis_server: RedisServer, tmp_path: Path) -> Iterator[Cluster]:
    url = f"redis://127.0.0.1:{redis_server.port}/0?prefix=accrs{uuid.uuid4().hex[:8]}"
    cluster = make_cluster(url, tmp_path)
    yield cluster
    cluster.stop_all()  # before the server goes, or the workers would only retry


# the scenario ---------------------------------------------------------------------------------
def ended(cluster: Cluster) -> int:
    if not cluster.record.exists():
        return 0
    data = cluster.record.read_bytes()
    return data.count(b"\nend ") + data.startswith(b"end ")


def producer(cluster: Cluster) -> App:
    app: App = cluster.app()  # type: ignore[no-untyped-call]
    return app


def succeeded(cluster: Cluster) -> int:
    counts = producer(cluster).broker.count_by_state()
    return sum(n for (_q, state), n in counts.items() if state is JobState.SUCCEEDED)


def alive(procs: list[subprocess.Popen[bytes]]) -> None:
    for n, p in enumerate(procs):
        assert p.poll() is None, f"worker {n} (pid {p.pid}) exited with {p.returncode}"


def log_events(cluster: Cluster) -> list[dict[str, object]]:
    out = []
    for n in range(len(cluster.procs)):
        for line in cluster.log(n).splitlines():
            try:
                entry = json.loads(line)
            except ValueError:
                continue  # psycopg_pool's own warnings are plain lines
            if isinstance(entry, dict):
                out.append(entry)
    return out


def run_through_outage(
    cluster: Cluster,
    outage: Callable[[], None],
    lease: float,
    *,
    worker_sees_errors: bool = False,
) -> None:
    cluster.env["ACC_LEASE"] = str(lease)
    app = producer(cluster)
    handles = app.enqueue_many("sleep", [([JOB_SECONDS], {}) for _ in range(JOBS)], queue="acc")
    ids = {h.id for h in handles}
    assert len(ids) == JOBS
    workers = [cluster.worker("--concurrency", str(CONCURRENCY)) for _ in range(WORKERS)]

    def half_done() -> bool:
        alive(workers)
        return ended(cluster) >= JOBS // 2

    wait_until(half_done, 90, "half of the jobs to end", step=0.02)
    before = ended(cluster)
    outage_began = time.time()
    outage()
    outage_ended = time.time()
    print(f"\noutage at {before} ended jobs: {outage_ended - outage_began:.2f} s", file=sys.stderr)
    assert before < JOBS, "the outage came after the work: the test proves nothing"

    def all_succeeded() -> bool:
        alive(workers)  # fail fast: a worker that died does not come back
        return succeeded(cluster) == JOBS

    wait_until(all_succeeded, FINISH_TIMEOUT, f"{JOBS} successes", step=0.2)
    alive(workers)  # they recovered by themselves: the test restarted none of them

    # none lost, all succeeded, each by an attempt that really ran to its end
    stored = app.broker.list_jobs(limit=10 * JOBS)
    assert {j.id for j in stored} == ids, "jobs were lost or appeared"
    assert all(j.state is JobState.SUCCEEDED for j in stored)
    starts: dict[str, list[tuple[int, int, float]]] = defaultdict(list)
    ends: dict[tuple[str, int], int] = {}
    for kind, job_id, attempt, pid, ts in cluster.records():
        if kind == "start":
            starts[job_id].append((attempt, pid, ts))
        else:
            ends[(job_id, attempt)] = pid
    assert set(starts) == ids, "every job ran"
    for job in stored:
        assert job.attempt <= job.max_attempts
        ran = [pid for attempt, pid, _ts in starts[job.id] if attempt == job.attempt]
        assert ran, f"{job.id} succeeded with attempt {job.attempt}, which never started"
        assert ends.get((job.id, job.attempt)) == ran[0], f"{job.id}: attempt never ended"
    assert any(ts > outage_ended for s in starts.values() for _a, _p, ts in s), (
        "no job started after the outage"
    )

    events = log_events(cluster)
    trouble = [e for e in events if e.get("status") == "broker_unavailable"]
    if worker_sees_errors:
        # runtime.py's path: the broker call failed for good, the worker kept its results
        assert trouble, "the outage outlasted the broker's retries yet no worker.error"

    # At-least-once across the outage, but a re-run only once the earlier attempt's lease ran
    # out, and only where the broker refused that attempt's result.
    accepted = {(e["job_id"], e["attempt"]) for e in events if e["event"] == "job.succeeded"}
    reruns = {j: sorted(s) for j, s in starts.items() if len(s) > 1}
    print(f"{len(reruns)} jobs ran again; {len(trouble)} worker.error", file=sys.stderr)
    inside: list[str] = []
    for job_id, runs in reruns.items():
        attempts = [a for a, _p, _t in runs]
        assert len(set(attempts)) == len(attempts), f"{job_id}: one attempt ran twice: {runs}"
        for (a0, p0, t0), (a1, p1, t1) in itertools.pairwise(runs):
            assert (job_id, a0) not in accepted, f"{job_id}: attempt {a0} succeeded, {a1} ran"
            if t1 - t0 < lease - LEASE_SLACK:
                inside.append(
                    f"{job_id}: attempt {a1} (pid {p1}) started {t1 - t0:.3f} s after "
                    f"attempt {a0} (pid {p0})"
                )
    if inside:
        raise DuplicateWhileAlive(
            f"{len(inside)} re-runs inside the {lease} s lease of a live worker: "
            + "; ".join(inside[:5])
        )

    # and they are healthy: SIGTERM stops them cleanly
    for p in workers:
        p.send_signal(signal.SIGTERM)
    for n, p in enumerate(workers):
        assert p.wait(40) == 0, f"worker {n} exited with {p.returncode}: {cluster.log(n)[-2000:]}"


@pytest.mark.postgres
def test_postgres_restart(pg_cluster: Cluster) -> None:
    run_through_outage(pg_cluster, lambda: postgres_outage(0), RESTART_LEASE)


@pytest.mark.postgres
def test_postgres_outage_longer_than_lease(pg_cluster: Cluster) -> None:
    run_through_outage(pg_cluster, lambda: postgres_outage(LONG_OUTAGE), SHORT_LEASE)


@pytest.mark.redis
def test_redis_restart(redis_cluster: Cluster, redis_server: RedisServer) -> None:
    run_through_outage(redis_cluster, lambda: redis_server.outage(0), RESTART_LEASE)


@pytest.mark.redis
def test_redis_outage_longer_than_lease(redis_cluster: Cluster, redis_server: RedisServer) -> None:
    run_through_outage(redis_cluster, lambda: redis_server.outage(LONG_OUTAGE), SHORT_LEASE)


@pytest.mark.redis
def test_redis_outage_past_client_retries(
    redis_cluster: Cluster, redis_server: RedisServer
) -> None:
    run_through_outage(
        redis_cluster,
        lambda: redis_server.outage(REDIS_PAST_RETRIES),
        SHORT_LEASE,
        worker_sees_errors=True,
    )
