"""Soak: one worker process per backend (thread mode, concurrency 4) under a steady load of
80 % of the throughput measured just before (jobs of a 20 ms sleep), for a while; its RSS
and file descriptors, the broker's memory (Redis ``used_memory``, the SQLite files' size,
the RSS of this run's PostgreSQL backends, with the jobs table's
``pg_total_relation_size`` and the backend count) and the backlog sampled every 10 s. One JSON line
per sample and a summary line (start, end, max) go to
``bench/results/soak-<backend>-<stamp>.jsonl``.
"""

from __future__ import annotations

import contextlib
import json
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import psutil
from bench.chaos_rig import BACKENDS, POOL, SqliteBackend, Worker, reader, worker_env

import faena
from faena.core.states import JobState

SAMPLE_EVERY = 10.0
PROBE_JOBS = 1000
DISK_MB = 512  # SQLite's tmpfs: the finished jobs stay (retention is 7 days)


def tree_usage(pid: int) -> tuple[int, int]:
    """RSS (bytes) and open file descriptors of a process and its children."""
    rss = fds = 0
    root = psutil.Process(pid)
    for p in [root, *root.children(recursive=True)]:
        with contextlib.suppress(psutil.Error):
            rss += p.memory_info().rss
            fds += p.num_fds()
    return rss, fds


def backlog(app: Any) -> int:
    counts = app.broker.count_by_state()
    return sum(n for (_q, state), n in counts.items() if state is JobState.QUEUED)


def drained(app: Any) -> bool:
    counts = app.broker.count_by_state()
    return not any(n for (_q, s), n in counts.items() if s in (JobState.QUEUED, JobState.RUNNING))


def run_soak(name: str, seconds: float, out: Path) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix=f"soak-{name}-"))
    backend = SqliteBackend(tmp, DISK_MB) if name == "sqlite" else BACKENDS[name](tmp)
    worker = Worker("soak", ("--concurrency", "4"), backend.url, tmp, worker_env(tmp / "a.log"))
    producer = faena.App(broker=backend.url, pools={"limited": POOL}, parallelism=64)
    try:
        producer.broker.setup()
        worker.start()
        store = reader(backend.url)
        # the throughput: a backlog of trivial jobs drained by the one worker
        time.sleep(3.0)
        began = time.monotonic()
        for _ in range(PROBE_JOBS // 100):
            producer.enqueue_many("soak", [((), {}) for _ in range(100)], queue="chaos")
        while not drained(store):
            time.sleep(0.05)
        throughput = PROBE_JOBS / (time.monotonic() - began)
        rate = 0.8 * throughput
        done = threading.Event()
        sent = [0]

        def produce() -> None:
            tick, owed = 0.1, 0.0
            while not done.wait(tick):
                owed += rate * tick
                n, owed = int(owed), owed - int(owed)
                if n:
                    producer.enqueue_many("soak", [((), {}) for _ in range(n)], queue="chaos")
                    sent[0] += n

        thread = threading.Thread(target=produce, daemon=True)
        thread.start()
        samples: list[dict[str, Any]] = []
        start = time.monotonic()
        with open(out, "w") as sink:
            while True:
                assert worker.alive() and worker.proc is not None, "the soak worker died"
                rss, fds = tree_usage(worker.proc.pid)
                sample = {
                    "t": round(time.monotonic() - start, 1),
                    "rss_mb": round(rss / 2**20, 1),
                    "fds": fds,
                    "broker_mb": round(backend.memory() / 2**20, 2),
                    **backend.gauges(),
                    "backlog": backlog(store),
                    "enqueued": sent[0],
                }
                samples.append(sample)
                sink.write(json.dumps(sample) + "\n")
                sink.flush()
                if time.monotonic() - start >= seconds:
                    break
                time.sleep(SAMPLE_EVERY)
            done.set()
            thread.join()
            first, last = samples[0], samples[-1]
            line = {
                "summary": name,
                "seconds": seconds,
                "throughput": round(throughput, 1),
                "rate": round(rate, 1),
                "jobs": sent[0],
                "rss_mb": [first["rss_mb"], last["rss_mb"], max(s["rss_mb"] for s in samples)],
                "fds": [first["fds"], last["fds"], max(s["fds"] for s in samples)],
                "broker_mb": [
                    first["broker_mb"],
                    last["broker_mb"],
                    max(s["broker_mb"] for s in samples),
                ],
                **{
                    k: [first[k], last[k], max(s[k] for s in samples)]
                    for k in first
                    if k not in ("t", "rss_mb", "fds", "broker_mb", "backlog", "enqueued")
                },
                "backlog_max": max(s["backlog"] for s in samples),
            }
            sink.write(json.dumps(line) + "\n")
        print(json.dumps(line), flush=True)
        store.close()
        return line
    finally:
        worker.stop()
        producer.close()
        backend.close()
