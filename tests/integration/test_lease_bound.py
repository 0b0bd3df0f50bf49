"""The bound of "no duplicate while alive": it holds while the worker reaches its broker
within the lease, and only then.

One worker (on a thread of the test) reaches a real Redis through a proxy the test cuts; the
test itself stands for another worker, claiming on the same broker directly. Cut for less
than the lease, the running job is never handed out again and its result is accepted. Cut
for longer, its lease runs out at the broker, the other worker is given the job (attempt 2)
while the first still runs it, and the first worker's late report is refused (fencing): the
job's state is the second attempt's alone.
"""

from __future__ import annotations

import os
import signal
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import REDIS_URL, need, port_open
from tests.integration.test_worker_refused_writes import WorkerProcess
from tests.partition import Partition
from tests.worker_threads import run

import faena
from faena.core.job import Outcome
from faena.core.states import JobState
from faena.worker import Worker

pytestmark = pytest.mark.redis

QUEUE = "bound"


def wait_for(predicate: Any, what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


@pytest.fixture
def setup() -> Iterator[tuple[str, str, Partition]]:
    need(port_open("127.0.0.1", 6379), "Redis is not running on 127.0.0.1:6379")
    host_port = REDIS_URL.split("://", 1)[1].split("/", 1)[0].rsplit("@", 1)[-1]
    host, port = host_port.rsplit(":", 1)
    partition = Partition((host, int(port)))
    prefix = f"bound{uuid.uuid4().hex[:8]}"
    direct = f"{REDIS_URL}?prefix={prefix}"
    proxied = f"redis://127.0.0.1:{partition.port}/0?prefix={prefix}"
    yield direct, proxied, partition
    partition.close()
    app = faena.App(broker=direct)
    app.broker.destroy()  # type: ignore[attr-defined]
    app.close()


@dataclass
class First:
    """The first worker, through the proxy, and the job it runs until ``finish`` is set."""

    app: faena.App
    worker: Worker
    thread: threading.Thread
    handle: Any
    finish: threading.Event
    interrupted: threading.Event
    held: Any
    told: list[tuple[str, dict[str, Any]]]

    def names(self) -> list[str]:
        return [n for n, _ in self.told]

    def close(self, partition: Partition) -> None:
        self.finish.set()
        partition.heal()
        self.worker.stop()
        self.thread.join(20)
        self.app.close()


def start(proxied: str, lease: float) -> First:
    app = faena.App(broker=proxied, lease_seconds=lease)
    told: list[tuple[str, dict[str, Any]]] = []
    app.events.subscribe(None, lambda e: told.append((e.name, dict(e.fields))))
    started, finish, interrupted = threading.Event(), threading.Event(), threading.Event()

    @app.task(queue=QUEUE)
    def held() -> str:
        started.set()
        try:
            while not finish.wait(0.05):
                pass
        except BaseException:  # the worker interrupted it
            interrupted.set()
            raise
        return "done"

    handle = held.enqueue()
    worker, thread = run(app, concurrency=1)
    assert started.wait(20)
    return First(app, worker, thread, handle, finish, interrupted, held, told)


def test_an_outage_shorter_than_the_lease_hands_no_live_job_out_again(
    setup: tuple[str, str, Partition],
) -> None:
    lease = 4.0
    direct, proxied, partition = setup
    other = faena.App(broker=direct).broker
    first = start(proxied, lease)
    worker, handle = first.worker, first.handle
    try:
        # cut right after a heartbeat renewed the lease: the worker notices at its next beat (a
        # third of the lease on), is reconnected at once, and renews at the beat after; the
        # lease has a third of its length to spare even on a loaded machine
        renewed = other.get(handle.id).lease_expires_at
        wait_for(lambda: other.get(handle.id).lease_expires_at != renewed, "a lease renewal")
        partition.cut()
        end = time.monotonic() + lease / 4  # cut for a quarter lease, or until it is noticed
        wait_for(lambda: not worker.ready, "the worker to see the outage")
        while time.monotonic() < end:
            assert other.claim("other", [QUEUE], 10, lease).jobs == []
            time.sleep(0.05)
        partition.heal()
        wait_for(lambda: worker.ready, "the worker to reach the broker again")
        assert other.claim("other", [QUEUE], 10, lease).jobs == []
        first.finish.set()
        assert handle.wait(timeout=20) == "done"
        job = handle.refresh()
        assert (job.state, job.attempt, job.tries) == (JobState.SUCCEEDED, 1, 1)
        names = first.names()
        assert "worker.broker_unavailable" in names and "worker.broker_recovered" in names
        assert "job.lease_lost" not in names
    finally:
        first.close(partition)
        other.close()


def test_an_outage_longer_than_the_lease_stops_the_job_before_another_worker_is_given_it(
    setup: tuple[str, str, Partition],
) -> None:
    lease = 2.0
    direct, proxied, partition = setup
    other = faena.App(broker=direct).broker
    first = start(proxied, lease)
    handle = first.handle
    try:
        partition.cut()
        # unrenewed for 90 % of the lease, the first worker stops the job (a thread job is
        # interrupted) and says so; it will never report it
        wait_for(lambda: first.interrupted.is_set(), "the first worker to stop its job")
        [gave_up] = [f for n, f in first.told if n == "job.lease_lost"]
        assert (gave_up["job_id"], gave_up["attempt"]) == (handle.id, 1)
        assert gave_up["status"] == "lease_expired"
        # the lease runs out at the broker: the other worker reaps it and is given the job
        claimed: list[Any] = []
        wait_for(
            lambda: claimed.extend(other.claim("other", [QUEUE], 10, 30.0).jobs) or claimed,
            "the other worker to be given the job",
        )
        [second] = claimed
        assert (second.id, second.attempt) == (handle.id, 2)
        partition.heal()
        # the first worker takes turns again (a new job runs) and never reported attempt 1
        wait_for(lambda: first.worker.jobs_running == 0, "the stopped job to be let go")
        first.finish.set()
        assert first.held.enqueue().wait(timeout=20) == "done"
        job = handle.refresh()
        assert (job.state, job.attempt, job.worker) == (JobState.RUNNING, 2, "other")
        told = [(n, f["status"]) for n, f in first.told if f.get("job_id") == handle.id]
        assert told == [
            ("job.enqueued", "queued"),
            ("job.claimed", "running"),
            ("job.lease_lost", "lease_expired"),  # and no report of attempt 1
        ]
        done = Outcome(second.id, second.attempt, JobState.SUCCEEDED, result_json='"again"')
        assert other.finish([done]) == [True]
        assert handle.wait(timeout=10) == "again"
    finally:
        first.close(partition)
        other.close()


@pytest.mark.slow  # a worker process, and the back-off after the partition heals
def test_a_process_jobs_child_is_killed_when_its_lease_runs_out_unrenewed(
    setup: tuple[str, str, Partition], tmp_path: Path
) -> None:
    direct, proxied, partition = setup
    app = faena.App(broker=direct)
    flag = tmp_path / "hold"
    flag.touch()
    record = tmp_path / "record.log"
    worker = WorkerProcess(proxied, tmp_path, lease=3.0)

    def records() -> list[tuple[str, int, int]]:
        lines = record.read_text().splitlines() if record.exists() else []
        return [(k, int(a), int(p)) for k, _j, a, p, _t in (line.split() for line in lines)]

    try:
        handle = app.enqueue("hold_process", [str(flag)], queue="acc")
        wait_for(lambda: worker.alive() and records(), "the job to start in its child")
        [(_, attempt, child)] = records()
        assert attempt == 1
        partition.cut()
        wait_for(lambda: worker.alive() and worker.named("job.lease_lost"), "the worker to give up")
        [gave_up] = worker.named("job.lease_lost")
        assert (gave_up["job_id"], gave_up["attempt"], gave_up["status"]) == (
            handle.id,
            1,
            "lease_expired",
        )

        def gone() -> bool:
            try:
                os.kill(child, 0)
            except ProcessLookupError:
                return True
            return False

        wait_for(gone, "the child to be killed")
        assert records() == [("start", 1, child)]  # it never got to its end
        partition.heal()
        # the lease is reaped and the job runs again (here: the only worker), to its end
        wait_for(lambda: [k for k, a, _p in records() if a == 2] == ["start"], "attempt 2")
        flag.unlink()
        assert handle.wait(timeout=30) == "held"
        assert handle.refresh().attempt == 2
        assert [(k, a) for k, a, _p in records()] == [("start", 1), ("start", 2), ("end", 2)]
        assert not [e for e in worker.named("job.succeeded") if e["attempt"] == 1]
        worker.proc.send_signal(signal.SIGTERM)
        assert worker.proc.wait(30) == 0
    finally:
        worker.kill()
        app.close()
