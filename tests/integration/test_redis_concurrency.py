"""Four worker processes share one Redis: pool slots and the parallelism cap hold at every
instant, and each job finishes exactly once.

Each process claims up to 2 jobs at a time and records, per job, the moment after ``claim``
returned and the moment before ``finish`` is called; any instant covered by more intervals
than the pool (or the cap) allows would be an over-commit.
"""

from __future__ import annotations

import importlib.util
import multiprocessing
import time
import uuid
from collections import Counter
from typing import Any

import pytest
from tests.conftest import REDIS_URL, need, port_open

from faena.brokers.url import open_broker
from faena.core.job import NewJob, Outcome
from faena.core.states import JobState

pytestmark = pytest.mark.redis

PROCESSES = 4
JOBS = 60
POOL = 3


def _work(url: str, total: int, out: Any) -> None:
    broker = open_broker(url)
    spans: list[tuple[str, float, float]] = []
    wins: list[str] = []
    idle_since = time.monotonic()
    while time.monotonic() - idle_since < 30:
        jobs = broker.claim(f"w-{multiprocessing.current_process().pid}", ["q"], 2, 30.0).jobs
        if not jobs:
            if broker.count_by_state().get(("q", JobState.SUCCEEDED), 0) >= total:
                break
            time.sleep(0.002)
            continue
        idle_since = time.monotonic()
        start = time.monotonic()
        time.sleep(0.01)  # the jobs run
        end = time.monotonic()
        outcomes = [Outcome(j.id, j.attempt, JobState.SUCCEEDED, result_json="1") for j in jobs]
        for job, ok in zip(jobs, broker.finish(outcomes), strict=True):
            spans.append((job.id, start, end))
            if ok:
                wins.append(job.id)
    broker.close()
    out.put((spans, wins))


def _max_overlap(spans: list[tuple[str, float, float]]) -> int:
    events = sorted([(s, 1) for _, s, _ in spans] + [(e, -1) for _, _, e in spans])
    level = peak = 0
    for _, step in events:  # an end sorts before a start at the same instant
        level += step
        peak = max(peak, level)
    return peak


@pytest.mark.parametrize("cap", [None, 2])
def test_four_processes_never_over_commit(cap: int | None) -> None:
    need(importlib.util.find_spec("redis") is not None, "redis-py is not installed")
    need(port_open("127.0.0.1", 6379), "Redis is not running on 127.0.0.1:6379")
    sep = "&" if "?" in REDIS_URL else "?"
    url = f"{REDIS_URL}{sep}prefix=conc{uuid.uuid4().hex[:8]}"
    broker = open_broker(url)
    broker.setup()
    try:
        broker.set_pools({"three": POOL})
        broker.set_parallelism(cap)
        jobs = broker.enqueue([NewJob(task="t", queue="q", pool="three") for _ in range(JOBS)])
        ctx = multiprocessing.get_context("spawn")
        out = ctx.Queue()
        procs = [ctx.Process(target=_work, args=(url, JOBS, out)) for _ in range(PROCESSES)]
        for p in procs:
            p.start()
        results = [out.get(timeout=120) for _ in procs]
        for p in procs:
            p.join(timeout=30)
            assert p.exitcode == 0

        spans = [s for r in results for s in r[0]]
        wins = Counter(w for r in results for w in r[1])
        limit = POOL if cap is None else cap
        peak = _max_overlap(spans)
        print(f"peak overlap {peak} (limit {limit})")
        assert peak <= limit
        assert wins == Counter({j.id: 1 for j in jobs})  # each finished exactly once
        assert len(spans) == JOBS  # and was handed out exactly once
        stored = broker.list_jobs(limit=JOBS + 1)
        assert {j.state for j in stored} == {JobState.SUCCEEDED}
        assert {j.attempt for j in stored} == {1}
        assert [p.used for p in broker.pool_stats() if p.pool == "three"] == [0]
    finally:
        destroy = getattr(broker, "destroy", None)
        if callable(destroy):
            destroy()
        broker.close()
