"""The app ``faena autoscale`` supervises in ``test_autoscale.py``.

Environment: ``AS_BROKER`` (URL) and ``AS_RECORD`` (file the jobs append ``start``/``end``
lines to: kind, job id, attempt, pid, time), like ``accapp``.
"""

from __future__ import annotations

import os
import time

import faena
from tests.acceptance import recording

app = faena.App(broker=os.environ.get("AS_BROKER", "sqlite:///autoscale.db"))


def record(kind: str) -> None:
    recording.record(kind, os.environ["AS_RECORD"])


@app.task(name="nap", queue="scale")
def nap(seconds: float) -> str:
    record("start")
    time.sleep(seconds)
    record("end")
    return "rested"
