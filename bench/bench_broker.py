"""Broker-level benchmark for any faena broker URL; prints one JSON object per line.

    python bench/bench_broker.py --url postgresql://postgres@127.0.0.1:5432/test
    python bench/bench_broker.py --url redis://127.0.0.1:6379/0

Figures (``system`` is ``faena-<broker kind>``):

* ``enqueue_one``: jobs/s, one job per ``enqueue`` call, one producer thread.
* ``enqueue_bulk``: jobs/s, ``enqueue`` calls of ``--batch`` jobs (1,000).
* ``drain``: jobs/s for ``--n`` (20,000) waiting no-op jobs, one emulated worker of
  concurrency 2: every completed job is reported with ``finish_and_claim`` together with the
  claim of the free slots (the loop a worker runs when jobs end at once).
* ``drain_one_by_one``: the same, one job per ``finish_and_claim`` (a worker whose two
  jobs end at different times), the pessimistic bound.
* ``drain_slots``: the same, one thread per slot, each reporting its own job and claiming
  the next with ``finish_and_claim`` on its own connection (a threaded worker runtime).
* ``start_latency_p50`` / ``_p99``: ms from the start of ``enqueue`` of one job to the return
  of the ``claim`` that got it, with an idle worker thread blocked on the broker's waker.

Each run works in a fresh scratch store (PostgreSQL schema, Redis key prefix, SQLite file)
that it drops at the end; the broker code runs in this process, the server elsewhere.
"""

from __future__ import annotations

import argparse
import json
import select
import statistics
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from faena.brokers.url import open_broker
from faena.core.job import NewJob, Outcome
from faena.core.states import JobState

LEASE = 60.0


def scratch_url(url: str) -> str:
    """``url`` pointed at a fresh store that this run may drop."""
    tag = f"bench_{uuid.uuid4().hex[:10]}"
    sep = "&" if "?" in url else "?"
    if url.startswith(("postgresql://", "postgres://")):
        return f"{url}{sep}schema={tag}"
    if url.startswith(("redis://", "rediss://")):
        return f"{url}{sep}prefix={tag}"
    if url.startswith("sqlite://"):
        return f"sqlite:///{Path(tempfile.mkdtemp()) / (tag + '.db')}"
    return url


class Bench:
    def __init__(self, url: str) -> None:
        self.broker: Any = open_broker(scratch_url(url))
        self.broker.setup()
        self.system = f"faena-{self.broker.kind}"

    def emit(self, metric: str, value: float, unit: str, n: int) -> None:
        row = {"system": self.system, "metric": metric, "value": round(value, 2), "unit": unit}
        print(json.dumps({**row, "n": n}), flush=True)

    def close(self) -> None:
        destroy = getattr(self.broker, "destroy", None)
        if callable(destroy):
            destroy()
        self.broker.close()

    def enqueue_one(self, n: int) -> None:
        start = time.perf_counter()
        for _ in range(n):
            self.broker.enqueue([NewJob(task="noop", queue="one")])
        self.emit("enqueue_one", n / (time.perf_counter() - start), "jobs/s", n)

    def enqueue_bulk(self, n: int, batch: int) -> None:
        batches = [
            [NewJob(task="noop", queue="bulk") for _ in range(min(batch, n - lo))]
            for lo in range(0, n, batch)
        ]
        start = time.perf_counter()
        for jobs in batches:
            self.broker.enqueue(jobs)
        self.emit("enqueue_bulk", n / (time.perf_counter() - start), "jobs/s", n)

    def drain(self, n: int, concurrency: int, per_call: int, metric: str) -> None:
        queue = [f"drain_{metric}"]
        for lo in range(0, n, 1000):
            self.broker.enqueue(
                [NewJob(task="noop", queue=queue[0]) for _ in range(min(1000, n - lo))]
            )
        start = time.perf_counter()
        running = list(self.broker.claim("bench", queue, concurrency, LEASE).jobs)
        done = 0
        while running:
            ended, running = running[:per_call], running[per_call:]
            outcomes = [
                Outcome(j.id, j.attempt, JobState.SUCCEEDED, result_json="null") for j in ended
            ]
            free = concurrency - len(running)
            results, got = self.broker.finish_and_claim(outcomes, "bench", queue, free, LEASE)
            done += sum(results)
            running += got.jobs
        elapsed = time.perf_counter() - start
        if done != n:
            raise SystemExit(f"drain finished {done} jobs of {n}")
        self.emit(metric, n / elapsed, "jobs/s", n)

    def drain_slots(self, n: int, concurrency: int) -> None:
        """One thread per slot, each reporting its job and claiming the next on its own."""
        queue = ["drain_slots"]
        for lo in range(0, n, 1000):
            self.broker.enqueue(
                [NewJob(task="noop", queue=queue[0]) for _ in range(min(1000, n - lo))]
            )
        counts = [0] * concurrency

        def slot(i: int) -> None:
            running = list(self.broker.claim(f"bench/{i}", queue, 1, LEASE).jobs)
            while running:
                out = [
                    Outcome(j.id, j.attempt, JobState.SUCCEEDED, result_json="null")
                    for j in running
                ]
                results, got = self.broker.finish_and_claim(out, "bench", queue, 1, LEASE)
                counts[i] += sum(results)
                running = got.jobs

        start = time.perf_counter()
        threads = [threading.Thread(target=slot, args=(i,)) for i in range(concurrency)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.perf_counter() - start
        if sum(counts) != n:
            raise SystemExit(f"drain_slots finished {sum(counts)} jobs of {n}")
        self.emit("drain_slots", n / elapsed, "jobs/s", n)

    def start_latency(self, n: int) -> None:
        queue = ["latency"]
        started: dict[str, float] = {}
        got_one = threading.Event()
        stop = threading.Event()
        waker = self.broker.waker(queue)

        def worker() -> None:
            while not stop.is_set():
                jobs = self.broker.claim("lat", queue, 2, LEASE).jobs
                if jobs:
                    now = time.perf_counter()
                    for job in jobs:
                        started[job.id] = now
                    self.broker.finish([Outcome(j.id, j.attempt, JobState.SUCCEEDED) for j in jobs])
                    got_one.set()
                    continue
                select.select([waker], [], [], 1.0)
                waker.drain()

        thread = threading.Thread(target=worker, daemon=True)
        thread.start()
        samples = []
        for _ in range(n):
            time.sleep(0.003)  # the worker is idle, blocked on the waker
            got_one.clear()
            t0 = time.perf_counter()
            [job] = self.broker.enqueue([NewJob(task="noop", queue=queue[0])])
            if not got_one.wait(5):
                raise SystemExit("a job was not started within 5 s")
            samples.append((started[job.id] - t0) * 1000)
        stop.set()
        self.broker.enqueue([NewJob(task="noop", queue=queue[0])])
        thread.join(5)
        waker.close()
        cuts = statistics.quantiles(samples, n=100)
        self.emit("start_latency_p50", statistics.median(samples), "ms", n)
        self.emit("start_latency_p99", cuts[98], "ms", n)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--url", required=True, help="broker URL (a scratch store is made)")
    parser.add_argument("--n", type=int, default=20_000, help="jobs to drain")
    parser.add_argument("--n-one", type=int, default=5_000, help="jobs enqueued one by one")
    parser.add_argument("--n-bulk", type=int, default=50_000, help="jobs enqueued in bulk")
    parser.add_argument("--batch", type=int, default=1_000, help="bulk batch size")
    parser.add_argument("--n-latency", type=int, default=300, help="latency samples")
    parser.add_argument(
        "--only",
        nargs="*",
        default=[
            "enqueue_one",
            "enqueue_bulk",
            "drain",
            "drain_one_by_one",
            "drain_slots",
            "latency",
        ],
        help="figures to measure",
    )
    args = parser.parse_args()
    bench = Bench(args.url)
    try:
        if "enqueue_one" in args.only:
            bench.enqueue_one(args.n_one)
        if "enqueue_bulk" in args.only:
            bench.enqueue_bulk(args.n_bulk, args.batch)
        if "drain" in args.only:
            bench.drain(args.n, 2, 2, "drain")
        if "drain_one_by_one" in args.only:
            bench.drain(args.n, 2, 1, "drain_one_by_one")
        if "drain_slots" in args.only:
            bench.drain_slots(args.n, 2)
        if "latency" in args.only:
            bench.start_latency(args.n_latency)
    finally:
        bench.close()


if __name__ == "__main__":
    main()
