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

import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from tests.conftest import REDIS_URL, need, port_open
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
    faena.App(broker=direct).broker.destroy()  # type: ignore[attr-defined]


@dataclass
class First:
    """The first worker, through the proxy, and the job it runs until ``finish`` is set."""

    app: faena.App
    worker: Worker
    thread: threading.Thread
    handle: Any
    finish: threading.Event
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
    started, finish = threading.Event(), threading.Event()

    @app.task(queue=QUEUE)
    def held() -> str:
        started.set()
        while not finish.wait(0.05):
            pass
        return "done"

    handle = held.enqueue()
    worker, thread = run(app, concurrency=1)
    assert started.wait(20)
    return First(app, worker, thread, handle, finish, told)


def test_an_outage_shorter_than_the_lease_hands_no_live_job_out_again(
    setup: tuple[str, str, Partition],
) -> None:
    lease = 4.0
    direct, proxied, partition = setup
    other = faena.App(broker=direct).broker
    first = start(proxied, lease)
    worker, handle = first.worker, first.handle
    try:
        partition.cut()
        wait_for(lambda: not worker.ready, "the worker to see the outage")
        cut_for = lease / 4  # well inside the lease the last heartbeat granted
        end = time.monotonic() + cut_for
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


def test_an_outage_longer_than_the_lease_may_hand_the_job_out_and_fences_the_late_report(
    setup: tuple[str, str, Partition],
) -> None:
    lease = 2.0
    direct, proxied, partition = setup
    other = faena.App(broker=direct).broker
    first = start(proxied, lease)
    handle = first.handle
    try:
        partition.cut()
        # the lease runs out at the broker: the other worker reaps it and is given the job
        # while the first one, alive, still runs it
        claimed: list[Any] = []
        wait_for(
            lambda: claimed.extend(other.claim("other", [QUEUE], 10, 30.0).jobs) or claimed,
            "the other worker to be given the job",
        )
        [second] = claimed
        assert (second.id, second.attempt) == (handle.id, 2)
        assert first.thread.is_alive()  # the first worker still runs it
        partition.heal()
        first.finish.set()
        # the first worker's report of attempt 1 comes late: refused
        wait_for(lambda: "job.lease_lost" in first.names(), "job.lease_lost")
        [lost] = [f for n, f in first.told if n == "job.lease_lost"]
        assert (lost["job_id"], lost["attempt"]) == (handle.id, 1)
        job = handle.refresh()
        assert (job.state, job.attempt, job.worker) == (JobState.RUNNING, 2, "other")
        done = Outcome(second.id, second.attempt, JobState.SUCCEEDED, result_json='"again"')
        assert other.finish([done]) == [True]
        assert handle.wait(timeout=10) == "again"
    finally:
        first.close(partition)
