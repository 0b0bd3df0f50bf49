"""Broker-level benchmark of the Redis broker; prints one JSON object per line.

    python bench/bench_redis_broker.py --url redis://127.0.0.1:6379/0

Metrics: ``enqueue_one`` (one job per call), ``enqueue_bulk`` (batches of ``--batch``),
``drain`` (one worker of concurrency 2 emulated with ``finish_and_claim``), and
``start_latency_p50``/``_p99`` (enqueue to claim, with an idle worker blocked on the waker).
Each run uses a fresh key prefix and deletes it afterwards.
"""

from __future__ import annotations

import argparse
import json
import select
import statistics
import threading
import time
import uuid

from faena.brokers.redis import RedisBroker
from faena.core.job import NewJob, Outcome
from faena.core.states import JobState

QUEUES = ["bench"]


def _broker(url: str) -> RedisBroker:
    sep = "&" if "?" in url else "?"
    broker = RedisBroker.from_url(f"{url}{sep}prefix=bench{uuid.uuid4().hex[:8]}")
    broker.setup()
    return broker


def _emit(metric: str, value: float, unit: str, n: int) -> None:
    row = {"system": "faena-redis", "metric": metric, "value": round(value, 3), "unit": unit}
    print(json.dumps({**row, "n": n}), flush=True)


def enqueue_one(url: str, n: int) -> None:
    broker = _broker(url)
    try:
        start = time.perf_counter()
        for _ in range(n):
            broker.enqueue([NewJob(task="noop", queue="bench")])
        _emit("enqueue_one", n / (time.perf_counter() - start), "jobs/s", n)
    finally:
        broker.destroy()
        broker.close()


def enqueue_bulk(url: str, n: int, batch: int) -> None:
    broker = _broker(url)
    try:
        start = time.perf_counter()
        for lo in range(0, n, batch):
            broker.enqueue([NewJob(task="noop", queue="bench") for _ in range(min(batch, n - lo))])
        _emit("enqueue_bulk", n / (time.perf_counter() - start), "jobs/s", n)
    finally:
        broker.destroy()
        broker.close()


def drain(url: str, n: int, concurrency: int = 2) -> None:
    broker = _broker(url)
    try:
        for lo in range(0, n, 1000):
            broker.enqueue([NewJob(task="noop", queue="bench") for _ in range(min(1000, n - lo))])
        start = time.perf_counter()
        held = broker.claim("w1", QUEUES, concurrency, 30.0).jobs
        done = 0
        while held:
            job = held.pop(0)
            out = Outcome(job.id, job.attempt, JobState.SUCCEEDED, result_json="null")
            flags, claimed = broker.finish_and_claim([out], "w1", QUEUES, 1, 30.0)
            done += sum(flags)
            held += claimed.jobs
        elapsed = time.perf_counter() - start
        assert done == n, f"drained {done} of {n}"
        _emit("drain", n / elapsed, "jobs/s", n)
    finally:
        broker.destroy()
        broker.close()


def start_latency(url: str, n: int) -> None:
    broker = _broker(url)
    waits: list[float] = []
    stop = threading.Event()

    def worker() -> None:
        waker = broker.waker(QUEUES)
        try:
            while not stop.is_set():
                jobs = broker.claim("w1", QUEUES, 2, 30.0).jobs
                now = time.time()
                for job in jobs:
                    waits.append(now - job.enqueued_at)
                    out = Outcome(job.id, job.attempt, JobState.SUCCEEDED, result_json="null")
                    broker.finish([out])
                if not jobs:
                    select.select([waker], [], [], 0.5)
                    waker.drain()
        finally:
            waker.close()

    thread = threading.Thread(target=worker, daemon=True)
    thread.start()
    try:
        time.sleep(0.2)
        for _ in range(n):
            broker.enqueue([NewJob(task="noop", queue="bench")])
            time.sleep(0.005)  # the worker is idle again before the next job
        deadline = time.monotonic() + 10
        while len(waits) < n and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        stop.set()
        thread.join(2)
        broker.destroy()
        broker.close()
    ms = sorted(w * 1000 for w in waits)
    _emit("start_latency_p50", statistics.median(ms), "ms", len(ms))
    _emit("start_latency_p99", ms[int(len(ms) * 0.99) - 1], "ms", len(ms))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("-n", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--latency-n", type=int, default=500)
    args = parser.parse_args()
    enqueue_one(args.url, args.n)
    enqueue_bulk(args.url, args.n * 5, args.batch)
    drain(args.url, args.n)
    start_latency(args.url, args.latency_n)


if __name__ == "__main__":
    main()
