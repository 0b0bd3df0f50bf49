"""The app the chaos harness (bench/chaos.py) runs in real ``faena worker`` processes.

Configured by environment: ``CHAOS_BROKER`` (URL), ``CHAOS_LOG`` (the file every attempt
appends ``kind job_id attempt pid time`` to: ``start``, then ``end`` or ``fail``),
``CHAOS_LEASE``, ``CHAOS_POOL``, ``CHAOS_PARALLELISM``.
"""

from __future__ import annotations

import os
import time

import faena

POOL = "limited"
app = faena.App(
    broker=os.environ.get("CHAOS_BROKER", "sqlite:///chaos.db"),
    pools={POOL: int(os.environ.get("CHAOS_POOL", "3"))},
    parallelism=int(os.environ.get("CHAOS_PARALLELISM", "8")),
    lease_seconds=float(os.environ.get("CHAOS_LEASE", "3")),
)


class Flaky(Exception):
    """An attempt that fails on purpose: the job retries."""


class Poison(Exception):
    """A job that fails every attempt: it ends dead."""


def record(kind: str) -> None:
    """One small O_APPEND write, atomic between processes."""
    job = faena.current_job()
    assert job is not None
    line = f"{kind} {job.id} {job.attempt} {os.getpid()} {time.time():.6f}\n"
    fd = os.open(os.environ["CHAOS_LOG"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


def body(ms: int, cpu: bool, fails: int) -> str:
    record("start")
    job = faena.current_job()
    assert job is not None
    if cpu:  # CPU-bound: holds the GIL in a thread worker
        until = time.perf_counter() + ms / 1000
        while time.perf_counter() < until:
            sum(range(1000))
    else:
        time.sleep(ms / 1000)
    if job.attempt <= fails:
        record("fail")
        raise Flaky(f"attempt {job.attempt} of a job that fails {fails} times")
    record("end")
    return "done"


# retries high enough that kills and lost leases (each consumes an attempt) never make a
# sound job dead: only the poison ones may end dead
@app.task(name="work", queue="chaos", retries=12, backoff_base=0.05, backoff_cap=0.5)
def work(ms: int, cpu: bool = False, fails: int = 0) -> str:
    return body(ms, cpu, fails)


@app.task(name="pooled", queue="chaos", pool=POOL, retries=12, backoff_base=0.05, backoff_cap=0.5)
def pooled(ms: int, cpu: bool = False, fails: int = 0) -> str:
    return body(ms, cpu, fails)


@app.task(name="poison", queue="chaos", retries=2, backoff_base=0.05)
def poison() -> None:
    record("start")
    record("fail")
    raise Poison("this job fails every attempt")


@app.task(name="soak", queue="chaos")
def soak(ms: int = 20) -> None:
    """The soak's job: a short sleep (so the broker is not the only work)."""
    time.sleep(ms / 1000)
