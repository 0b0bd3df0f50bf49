"""The app the acceptance tests run in real ``faena worker`` processes.

Configured by environment: ``ACC_BROKER`` (URL), ``ACC_RECORD`` (file the jobs append
``start``/``end`` lines to), ``ACC_LEASE``, ``ACC_POOL_SIZE``, ``ACC_PARALLELISM``.
"""

from __future__ import annotations

import os
import time

import faena
from tests.acceptance import recording

app = faena.App(
    broker=os.environ.get("ACC_BROKER", "sqlite:///acc.db"),
    pools={"limited": int(os.environ.get("ACC_POOL_SIZE", "3"))},
    parallelism=int(os.environ["ACC_PARALLELISM"]) if os.environ.get("ACC_PARALLELISM") else None,
    lease_seconds=float(os.environ.get("ACC_LEASE", "30")),
)


def record(kind: str) -> None:
    recording.record(kind, os.environ["ACC_RECORD"])


@app.task(name="sleep", queue="acc")
def sleep(seconds: float) -> str:
    record("start")
    time.sleep(seconds)
    record("end")
    return "slept"


@app.task(name="pooled", queue="acc", pool="limited")
def pooled(seconds: float) -> None:
    record("start")
    time.sleep(seconds)
    record("end")


@app.task(name="spin", queue="acc", timeout=1, retries=0, isolation="process")
def spin() -> None:
    while True:
        pass


@app.task(name="suicide", queue="acc", retries=2, backoff_base=0.05, isolation="process")
def suicide() -> None:
    record("start")
    os._exit(3)


@app.task(name="suicide_thread", queue="acc", retries=1, backoff_base=0.05)
def suicide_thread() -> None:
    record("start")
    os._exit(3)


@app.task(name="hold_process", queue="acc", isolation="process")
def hold_process(flag: str) -> str:
    """Runs while the file ``flag`` exists."""
    record("start")
    while os.path.exists(flag):
        time.sleep(0.02)
    record("end")
    return "held"
