"""Admission holds under concurrent claimers: 4 processes, each with its own connections,
claim and finish jobs of a 3-slot pool, then under a parallelism cap. Each records when it
held a job (after claim returned, before finish was called); at no instant may more jobs be
held than the limit, and every job must finish exactly once. The claimers take jobs two at a
time ("pairs"), or as a worker's slots do: two threads a process, each reporting its one job
and claiming the next in one call ("slots", the one-job claim path)."""

from __future__ import annotations

import multiprocessing
import random
import threading
import time
import uuid
from collections.abc import Iterator

import pytest
from tests.conftest import PG_URL, need, port_open

from faena.brokers.postgres import PostgresBroker
from faena.core.job import Job, NewJob, Outcome
from faena.core.states import JobState

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

PROCESSES = 4
JOBS = 120
QUEUE = "conc"

Interval = tuple[str, float, float, bool]  # job id, start, end, finish applied


def work(url: str, worker: str, seed: int, mode: str) -> list[Interval]:
    """One claimer process, until the queue stays empty."""
    broker = PostgresBroker.from_url(url)
    try:
        if mode == "pairs":
            return pairs(broker, worker, random.Random(seed))
        held: list[Interval] = []
        slots = [
            threading.Thread(target=slot, args=(broker, worker, random.Random(seed * 2 + n), held))
            for n in range(2)
        ]
        for t in slots:
            t.start()
        for t in slots:
            t.join()
        return held
    finally:
        broker.close()


def pairs(broker: PostgresBroker, worker: str, rng: random.Random) -> list[Interval]:
    """Claim up to 2 at a time, hold them, finish them."""
    held: list[Interval] = []
    idle_since = None
    while True:
        jobs = broker.claim(worker, [QUEUE], 2, 60).jobs
        if not jobs:
            idle_since = idle_since or time.monotonic()
            if time.monotonic() - idle_since > 1.5:
                return held
            time.sleep(0.002)
            continue
        idle_since = None
        start = time.monotonic()
        time.sleep(rng.uniform(0.002, 0.012))
        end = time.monotonic()
        done = broker.finish(
            [Outcome(j.id, j.attempt, JobState.SUCCEEDED, result_json="1") for j in jobs]
        )
        held += [(j.id, start, end, ok) for j, ok in zip(jobs, done, strict=True)]


def slot(broker: PostgresBroker, worker: str, rng: random.Random, held: list[Interval]) -> None:
    """A worker's slot: report the job just held and claim one more, in one call."""
    ended: list[tuple[Job, float, float]] = []
    idle_since = None
    while True:
        outcomes = [
            Outcome(j.id, j.attempt, JobState.SUCCEEDED, result_json="1") for j, _, _ in ended
        ]
        done, got = broker.finish_and_claim(outcomes, worker, [QUEUE], 1, 60)
        held.extend((j.id, start, end, ok) for (j, start, end), ok in zip(ended, done, strict=True))
        ended = []
        if not got.jobs:
            idle_since = idle_since or time.monotonic()
            if time.monotonic() - idle_since > 1.5:
                return
            time.sleep(0.002)
            continue
        idle_since = None
        start = time.monotonic()
        time.sleep(rng.uniform(0.002, 0.012))
        ended = [(got.jobs[0], start, time.monotonic())]


def max_overlap(intervals: list[Interval]) -> int:
    events = sorted([(s, 1) for _, s, _, _ in intervals] + [(e, -1) for _, _, e, _ in intervals])
    # at equal times the end (-1) sorts first: touching intervals do not overlap
    now = peak = 0
    for _, step in events:
        now += step
        peak = max(peak, now)
    return peak


@pytest.fixture
def url() -> Iterator[str]:
    need(port_open("127.0.0.1", 5432), "PostgreSQL is not running on 127.0.0.1:5432")
    url = f"{PG_URL}{'&' if '?' in PG_URL else '?'}schema=t_{uuid.uuid4().hex[:12]}"
    broker = PostgresBroker.from_url(url)
    broker.setup()
    yield url
    broker.destroy()
    broker.close()


def run(url: str, mode: str) -> list[Interval]:
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(PROCESSES) as pool:
        results = pool.starmap(work, [(url, f"w{i}", i, mode) for i in range(PROCESSES)])
    return [interval for chunk in results for interval in chunk]


def check(url: str, intervals: list[Interval], limit: int, ids: set[str]) -> None:
    assert max_overlap(intervals) <= limit
    applied = [job_id for job_id, _, _, ok in intervals if ok]
    assert sorted(applied) == sorted(ids)  # each job finished once, none lost
    broker = PostgresBroker.from_url(url)
    try:
        jobs = broker.list_jobs(limit=10 * JOBS)
        assert {j.id for j in jobs} == ids
        assert all(j.state is JobState.SUCCEEDED and j.attempt == 1 for j in jobs)
    finally:
        broker.close()


@pytest.mark.parametrize("mode", ["pairs", "slots"])
def test_pool_slots_hold_across_processes(url: str, mode: str) -> None:
    broker = PostgresBroker.from_url(url)
    broker.set_pools({"three": 3})
    ids = {j.id for j in broker.enqueue([NewJob("t", QUEUE, pool="three") for _ in range(JOBS)])}
    broker.close()
    intervals = run(url, mode)
    check(url, intervals, 3, ids)
    assert max_overlap(intervals) == 3  # the limit was actually reached


@pytest.mark.parametrize("mode", ["pairs", "slots"])
def test_parallelism_cap_holds_across_processes(url: str, mode: str) -> None:
    broker = PostgresBroker.from_url(url)
    broker.set_parallelism(2)
    ids = {j.id for j in broker.enqueue([NewJob("t", QUEUE) for _ in range(JOBS)])}
    broker.close()
    intervals = run(url, mode)
    check(url, intervals, 2, ids)
    assert max_overlap(intervals) == 2
