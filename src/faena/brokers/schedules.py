"""Schedule ticks in the store (``Broker.fire_schedule``): the checks every backend makes at
its entry, so each refuses the same input with the same words."""

from __future__ import annotations

import math
from collections.abc import Sequence

from faena.core import checks
from faena.core.job import NewJob
from faena.core.pools import check_name
from faena.errors import InvalidValueError


def check_fire(schedule: str, tick: float, jobs: Sequence[NewJob]) -> float:
    """The schedule name, the tick (a finite number of POSIX seconds, returned as a float)
    and the jobs, checked before anything is written."""
    check_name("schedule", schedule)
    if not isinstance(tick, int | float) or isinstance(tick, bool) or not math.isfinite(tick):
        raise InvalidValueError(
            f"schedule tick {tick!r} is not valid: give a finite time in POSIX seconds",
            field="tick",
            value=tick,
        )
    if jobs:
        checks.check_new_jobs(jobs)
    return float(tick)
