"""Tasks the benchmarks run. ``BENCH_BROKER`` names the broker; ``BENCH_RECORD`` a file;
``BENCH_COUNTER`` the Redis URL of the completion counter that ``counted`` increments."""

from __future__ import annotations

import os
import time

import faena

app = faena.App(broker=os.environ.get("BENCH_BROKER", "sqlite:///bench.db"))


@app.task(name="noop", queue="bench", retries=0)
def noop() -> None:
    return None


_counter = None


@app.task(name="counted", queue="bench", retries=0)
def counted() -> None:
    """The peers' drain job (bench/peers/common.py job_body): one INCR of a Redis counter that
    the harness polls, so every system does the same work per job and is timed alike."""
    global _counter
    if _counter is None:
        import redis

        _counter = redis.Redis.from_url(os.environ["BENCH_COUNTER"])
    _counter.incr(os.environ.get("BENCH_COUNTER_KEY", "bench:done"))


@app.task(name="stamp", queue="bench", retries=0)
def stamp(n: int) -> None:
    fd = os.open(os.environ["BENCH_RECORD"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, f"{n} {time.time():.6f}\n".encode())
    finally:
        os.close(fd)
