"""PostgreSQL restarts while a worker-like loop claims and finishes jobs: the loop must ride
it out by itself, every job must end succeeded, none lost, and the waker must listen again."""

from __future__ import annotations

import os
import select
import shutil
import subprocess
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator

import pytest
from tests.conftest import PG_URL, need, port_open

from faena.brokers.postgres import PostgresBroker
from faena.core.job import Job, NewJob, Outcome
from faena.core.states import JobState

pytestmark = [pytest.mark.postgres, pytest.mark.slow, pytest.mark.serial]

JOBS = 1000
LEASE = 3.0  # a claim whose reply was lost in the restart comes back this soon
QUEUE = "restart"


def restart_postgres() -> None:
    version = sorted(os.listdir("/etc/postgresql"))[-1]
    subprocess.run(
        ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "restart"],
        check=True,
        capture_output=True,
        timeout=120,
    )


@pytest.fixture
def broker() -> Iterator[PostgresBroker]:
    need(port_open("127.0.0.1", 5432), "PostgreSQL is not running on 127.0.0.1:5432")
    need(
        shutil.which("pg_ctlcluster") is not None and os.path.isdir("/etc/postgresql"),
        "pg_ctlcluster is needed to restart PostgreSQL",
    )
    need(os.geteuid() == 0, "restarting PostgreSQL needs root")
    url = f"{PG_URL}{'&' if '?' in PG_URL else '?'}schema=t_{uuid.uuid4().hex[:12]}"
    b = PostgresBroker.from_url(url)
    b.setup()
    yield b
    b.destroy()
    b.close()


class Loop(threading.Thread):
    """claim -> (no-op) -> finish_and_claim, as a worker of concurrency 4 would."""

    def __init__(self, broker: PostgresBroker) -> None:
        super().__init__(daemon=True)
        self.broker = broker
        self.applied: Counter[str] = Counter()
        self.stop = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            running: list[Job] = []
            while not self.stop.is_set():
                outcomes = [
                    Outcome(j.id, j.attempt, JobState.SUCCEEDED, result_json="1") for j in running
                ]
                done, got = self.broker.finish_and_claim(outcomes, "w1", [QUEUE], 4, LEASE)
                for outcome, ok in zip(outcomes, done, strict=True):
                    if ok:
                        self.applied[outcome.job_id] += 1
                running = got.jobs
                time.sleep(0.003 if running else 0.01)  # the jobs' own (tiny) work
        except BaseException as exc:  # the test reports it
            self.error = exc


def test_restart_under_load(broker: PostgresBroker, caplog: pytest.LogCaptureFixture) -> None:
    ids = {j.id for j in broker.enqueue([NewJob("t", QUEUE) for _ in range(JOBS)])}
    waker = broker.waker([QUEUE])
    loop = Loop(broker)
    loop.start()
    try:
        deadline = time.monotonic() + 30
        while sum(loop.applied.values()) < JOBS // 10 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert sum(loop.applied.values()) >= JOBS // 10, "the loop did not get going"

        restart_postgres()

        deadline = time.monotonic() + 60
        while set(loop.applied) != ids and time.monotonic() < deadline and loop.error is None:
            time.sleep(0.05)
        assert loop.error is None, f"the loop died: {loop.error!r}"
        assert set(loop.applied) == ids, f"{len(ids - set(loop.applied))} jobs not finished"
        assert max(loop.applied.values()) == 1  # a job succeeds once
        assert any(r.msg == "postgres.retry" for r in caplog.records), "no call was retried"
        jobs = broker.list_jobs(limit=10 * JOBS)
        assert len(jobs) == JOBS
        assert all(j.state is JobState.SUCCEEDED for j in jobs)
        # a claim lost in the restart costs at most an attempt, never the job
        assert all(j.attempt <= j.max_attempts for j in jobs)

        # the waker listens again by itself
        assert waker.wait_listening(30)
        waker.drain()
        broker.enqueue([NewJob("t", QUEUE)])
        assert select.select([waker], [], [], 10)[0] == [waker]
    finally:
        loop.stop.set()
        loop.join(10)
        waker.close()
