"""The app ``faena autoscale`` supervises in ``test_autoscale.py``.

Environment: ``AS_BROKER`` (URL) and ``AS_RECORD`` (file the jobs append ``start``/``end``
lines to: kind, job id, attempt, pid, time), like ``accapp``.
"""

from __future__ import annotations

import os
import time

import faena

app = faena.App(broker=os.environ.get("AS_BROKER", "sqlite:///autoscale.db"))


def record(kind: str) -> None:
    job = faena.current_job()
    assert job is not None
    line = f"{kind} {job.id} {job.attempt} {os.getpid()} {time.time():.6f}\n"
    fd = os.open(os.environ["AS_RECORD"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())  # one small O_APPEND write: atomic between processes
    finally:
        os.close(fd)


@app.task(name="nap", queue="scale")
def nap(seconds: float) -> str:
    record("start")
    time.sleep(seconds)
    record("end")
    return "rested"
