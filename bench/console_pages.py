"""Page-data time of the operator console on a store of a million jobs, per backend.

    python bench/console_pages.py --broker sqlite
    python bench/console_pages.py --broker postgres --jobs 1000000 --rounds 40
    python bench/console_pages.py --broker redis --keep        # print the URL, keep the store
    python bench/console_pages.py --broker redis --url redis://...?prefix=benchX   # reuse it

Fills a fresh store (SQLite file, PostgreSQL schema, Redis key prefix) with ``--jobs`` jobs
over three queues and two tasks by the broker's own bulk ``enqueue`` (batches of 5000), then
claims and finishes a third of them (succeeded, one in ten dead) and cancels 1 %: mixed
states, and several hundred thousand jobs finished within the stats window (on PostgreSQL
with a ``VACUUM ANALYZE`` of the jobs every 50,000 and at the end, as autovacuum would: the
test server here runs without it). Then for
``--rounds`` rounds it times the broker calls behind each console page (the same calls the
``/api/v1`` routes make: ``web/jobs.py``, ``web/stats.py``, ``web/api.py``), in process, so
the figures are the store's and not the HTTP stack's. Prints one JSON object per page:
median, p95 and max milliseconds, and the fill time. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

PG_URL = os.environ.get("FAENA_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("FAENA_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
QUEUES = ("orders", "mail", "etl")
BATCH = 5000


def store_url(kind: str) -> str:
    tag = uuid.uuid4().hex[:10]
    if kind == "sqlite":
        folder = Path(tempfile.mkdtemp(prefix="faena-console-pages-"))
        return f"sqlite:///{folder / 'bench.db'}"
    if kind == "postgres":
        return f"{PG_URL}{'&' if '?' in PG_URL else '?'}schema=bench_{tag}"
    if kind == "redis":
        return f"{REDIS_URL}{'&' if '?' in REDIS_URL else '?'}prefix=bench{tag}"
    raise SystemExit(f"--broker is sqlite, postgres or redis, not {kind!r}")


def vacuum_for(url: str) -> Callable[[], None]:
    """What autovacuum would do for the fill: ``VACUUM ANALYZE`` of the jobs table on
    PostgreSQL (this machine's test server runs with autovacuum off, and without it every
    claim of the fill walks the dead rows of all the claims before it); nothing elsewhere."""
    if not url.startswith("postgresql://"):
        return lambda: None
    import psycopg

    base, _, query = url.partition("?")
    schema = dict(p.split("=", 1) for p in query.split("&") if p)["schema"]

    def run() -> None:
        with psycopg.connect(base, autocommit=True) as conn:
            conn.execute(f'VACUUM ANALYZE "{schema}".jobs')

    return run


def fill(broker: Any, jobs: int, vacuum: Callable[[], None] = lambda: None) -> dict[str, float]:
    from faena.core.job import ErrorInfo, NewJob, Outcome
    from faena.core.states import JobState

    broker.set_pools({"default": 100_000})  # the filler claims many at a time

    def new(i: int) -> NewJob:
        return NewJob(
            task=("shop.charge", "mail.send")[i % 2],
            queue=QUEUES[i % 3],
            args_json=json.dumps([f"customer-{i}", i % 997]),
            kwargs_json=json.dumps({"order": f"O{i:07d}", "amount": i % 500}),
        )

    t0 = time.perf_counter()
    # the oldest third runs and ends, a batch at a time (a claim reads the runnable jobs of
    # its queues: few, so the fill stays fast); the rest is enqueued after and stays queued
    target, n = jobs // 3, 0
    for lo in range(0, target, 1000):
        broker.enqueue([new(i) for i in range(lo, min(lo + 1000, target))])
        while got := broker.claim("bench-filler", list(QUEUES), 1000, 600.0).jobs:
            outcomes = []
            for j in got:
                n += 1
                error = ErrorInfo("Boom", f"card declined {n}")
                outcomes.append(
                    Outcome(j.id, j.attempt, JobState.DEAD, error=error)
                    if n % 10 == 0
                    else Outcome(j.id, j.attempt, JobState.SUCCEEDED, result_json="1")
                )
            broker.finish(outcomes)
        if lo % 50_000 == 0:
            vacuum()
    finished = time.perf_counter() - t0
    for lo in range(target, jobs, BATCH):
        broker.enqueue([new(i) for i in range(lo, min(lo + BATCH, jobs))])
    enqueued = time.perf_counter() - t0 - finished
    left = jobs // 100  # 1 % cancelled while queued, in bulk batches
    while left > 0:
        changed = broker.cancel_matching(state=JobState.QUEUED, limit=min(left, 1000))
        if not changed:
            break
        left -= changed
    vacuum()
    return {
        "enqueue_s": round(enqueued, 1),
        "finish_s": round(finished, 1),
        "total_s": round(time.perf_counter() - t0, 1),
    }


def pages(broker: Any) -> dict[str, Callable[[], object]]:
    """The broker calls behind each console page (what its API calls do)."""
    from faena.core.search import JobSearch
    from faena.core.states import JobState

    def overview() -> None:  # GET /stats, /queues, /pools, /workers
        broker.job_stats(minutes=60)
        broker.count_by_state()
        broker.queue_stats()
        broker.paused_queues()
        broker.pool_stats()
        broker.list_workers()

    def overview_queue() -> None:
        broker.job_stats(minutes=60, queue="mail")

    def queues() -> None:
        broker.queue_stats()
        broker.paused_queues()

    def walk(search: JobSearch, depth: int) -> Callable[[], None]:
        def go() -> None:
            cursor = None
            for _ in range(depth):
                page = broker.search_jobs(search, limit=50, cursor=cursor)
                cursor = page.next_cursor
                if cursor is None:
                    break

        return go

    newest = broker.search_jobs(JobSearch(), limit=1).jobs[0]
    return {
        "overview": overview,
        "overview_one_queue": overview_queue,
        "queues": queues,
        "jobs_newest": walk(JobSearch(), 1),
        "jobs_newest_5_pages": walk(JobSearch(), 5),
        "jobs_dead": walk(JobSearch(state=JobState.DEAD), 1),
        "jobs_queued_of_queue": walk(JobSearch(state=JobState.QUEUED, queue="etl"), 1),
        "jobs_succeeded_of_task": walk(JobSearch(state=JobState.SUCCEEDED, task="mail.send"), 1),
        "jobs_text_hit": walk(JobSearch(text=f"customer-{newest.args[0][9:]}"), 1),
        "jobs_text_miss_bounded": walk(JobSearch(text="no-such-thing"), 1),
        "jobs_dead_text_in_error": walk(JobSearch(state=JobState.DEAD, text="DECLINED 7"), 1),
        "jobs_last_minute": walk(JobSearch(since=time.time() - 60), 1),
        "job_detail": lambda: broker.get(newest.id),
    }


def measure(calls: dict[str, Callable[[], object]], rounds: int) -> list[dict[str, Any]]:
    times: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(rounds):
        for name, call in calls.items():
            started = time.perf_counter()
            call()
            times[name].append((time.perf_counter() - started) * 1000)
    out = []
    for name, ms in times.items():
        ordered = sorted(ms)
        p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
        out.append(
            {
                "page": name,
                "rounds": rounds,
                "median_ms": round(statistics.median(ordered), 2),
                "p95_ms": round(p95, 2),
                "max_ms": round(ordered[-1], 2),
            }
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--broker", choices=["sqlite", "postgres", "redis"], required=True)
    parser.add_argument("--jobs", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument(
        "--url", help="a store this script filled before (--keep): no fill, and it is kept"
    )
    parser.add_argument("--keep", action="store_true", help="leave the store for --url")
    parser.add_argument("--out", type=Path, help="also append the JSON lines to this file")
    args = parser.parse_args()
    from faena.brokers.url import open_broker

    url = args.url or store_url(args.broker)
    broker = open_broker(url)
    broker.setup()
    filled: dict[str, Any] = {"reused": True}
    if not args.url:
        filled = fill(broker, args.jobs, vacuum_for(url))
    counts = broker.count_by_state()
    by_state: dict[str, int] = {}
    for (_, state), n in counts.items():
        by_state[state.value] = by_state.get(state.value, 0) + n
    header = {
        "broker": args.broker,
        "jobs": sum(counts.values()),
        "by_state": by_state,
        "fill": filled,
    }
    lines = [header, *measure(pages(broker), args.rounds)]
    for line in lines:
        print(json.dumps(line), flush=True)
    if args.out:
        with args.out.open("a") as f:
            for line in lines:
                f.write(json.dumps(line) + "\n")
    if args.keep:
        print(json.dumps({"kept": url}), file=sys.stderr)
    elif not args.url:  # a store given by --url is not this run's to destroy
        destroy = getattr(broker, "destroy", None)
        if destroy is not None:
            destroy()
    broker.close()
    if not args.keep and not args.url and url.startswith("sqlite:///"):
        shutil.rmtree(Path(url.removeprefix("sqlite:///")).parent, ignore_errors=True)


if __name__ == "__main__":
    main()
