"""A Redis restart in the middle of a claim/finish loop loses nothing.

The test owns its ``redis-server`` (a free port, AOF with ``appendfsync always`` in a temporary
directory), stops it with SIGTERM while a loop claims and finishes 1,000 jobs, and starts it
again on the same port and directory. The loop never sees an error: the broker reconnects with
backoff and reloads its scripts, the waker subscribes again, and every job ends succeeded.
"""

from __future__ import annotations

import select
import threading
import time
import uuid

import pytest
from tests.redis_server import RedisServer

from faena.brokers.redis import RedisBroker
from faena.core.job import NewJob, Outcome
from faena.core.states import JobState

pytestmark = [pytest.mark.redis, pytest.mark.slow]

JOBS = 1000
LEASE = 2.0  # a claim whose reply was lost in the restart runs again after this


def test_restart_mid_loop_loses_nothing(redis_server: RedisServer) -> None:
    server = redis_server
    url = f"redis://127.0.0.1:{server.port}/0?prefix=restart{uuid.uuid4().hex[:6]}"
    broker = RedisBroker.from_url(url)
    broker.setup()
    jobs = broker.enqueue([NewJob(task="t", queue="q", max_attempts=10) for _ in range(JOBS)])
    ids = {j.id for j in jobs}
    finished: list[str] = []
    errors: list[BaseException] = []
    stop = threading.Event()

    def loop() -> None:
        held = []
        while not stop.is_set():
            try:
                outcomes = [
                    Outcome(j.id, j.attempt, JobState.SUCCEEDED, result_json="1") for j in held
                ]
                done, claimed = broker.finish_and_claim(outcomes, "w1", ["q"], 2, LEASE)
                finished.extend(j.id for j, ok in zip(held, done, strict=True) if ok)
                held = claimed.jobs
                if not held:
                    # A finish whose reply the restart swallowed was written all the same (a
                    # retry of it then reports False, as for any repeated finish): the store,
                    # not the replies, says when everything is done.
                    if broker.count_by_state().get(("q", JobState.SUCCEEDED)) == JOBS:
                        return
                    time.sleep(0.01)
            except BaseException as exc:  # the loop must never see one
                errors.append(exc)
                return

    worker = threading.Thread(target=loop, daemon=True)
    worker.start()
    while len(finished) < JOBS // 3 and worker.is_alive():
        time.sleep(0.005)
    waker = broker.waker(["q"])
    server.stop()
    server.start()
    worker.join(timeout=120)
    stop.set()
    assert not errors, errors
    assert not worker.is_alive(), f"the loop is stuck after {len(set(finished))} finishes"

    # the waker subscribed again by itself
    waker.drain()
    [extra] = broker.enqueue([NewJob(task="t", queue="q")])
    assert select.select([waker], [], [], 10.0)[0] == [waker]
    waker.close()

    counts = broker.count_by_state()
    assert counts == {("q", JobState.QUEUED): 1, ("q", JobState.SUCCEEDED): JOBS}
    stored = broker.list_jobs(state=JobState.SUCCEEDED, limit=JOBS + 10)
    assert {j.id for j in stored} == ids
    assert extra.id not in ids
    assert len(set(finished)) >= JOBS - 2  # at most one in-flight reply lost (2 jobs)
    broker.close()
