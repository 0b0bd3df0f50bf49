"""Tasks the benchmarks run. ``BENCH_BROKER`` names the broker; ``BENCH_RECORD`` a file."""

from __future__ import annotations

import os
import time

import faena

app = faena.App(broker=os.environ.get("BENCH_BROKER", "sqlite:///bench.db"))


@app.task(name="noop", queue="bench", retries=0)
def noop() -> None:
    return None


@app.task(name="stamp", queue="bench", retries=0)
def stamp(n: int) -> None:
    fd = os.open(os.environ["BENCH_RECORD"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, f"{n} {time.time():.6f}\n".encode())
    finally:
        os.close(fd)
