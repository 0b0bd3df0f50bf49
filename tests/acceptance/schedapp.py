"""The app of the schedules acceptance test: its clock is a file the test moves forward, so
three worker processes share one simulated time (tests/acceptance/test_schedules.py)."""

from __future__ import annotations

import os
from pathlib import Path

import faena


class FileClock:
    """The time written in a file (POSIX seconds as text), read at every call: the test
    replaces the file atomically to move every process's clock at once."""

    def __init__(self, path: str) -> None:
        self._path = Path(path)

    def now(self) -> float:
        return float(self._path.read_text())


app = faena.App(broker=os.environ["ACC_BROKER"], clock=FileClock(os.environ["ACC_CLOCK"]))


@app.task(name="tick", queue="sched")
def tick(schedule: str, at: str) -> None:  # never run: the workers consume another queue
    return None


app.schedule(
    "every5", task=tick, every=5, args=("every5",), tick_kwarg="at",
    missed="catch_up", catch_up_max=1000,
)  # fmt: skip
app.schedule(
    "minutely", task=tick, cron="* * * * *", tz="Europe/Madrid", args=("minutely",),
    tick_kwarg="at", missed="catch_up", catch_up_max=1000,
)  # fmt: skip
app.schedule("every7", task=tick, every=7, args=("every7",), tick_kwarg="at")  # skip policy
