"""Backfill: one run of a pipeline per logical date of a range, each under its own run key,
so running the same backfill again creates nothing new. The runs are ordinary work: their
steps wait for their pools like any other job."""

from __future__ import annotations

import datetime as dt

from faena.core.runs import RunRecord
from faena.errors import ConfigError
from faena.pipelines.declare import Pipeline

#: the longest range one backfill call takes
MAX_DAYS = 3660


def dates(start: dt.date, end: dt.date) -> list[dt.date]:
    """Every date from ``start`` to ``end``, both included."""
    if end < start:
        raise ConfigError(f"backfill end {end} is before its start {start}; swap them")
    days = (end - start).days + 1
    if days > MAX_DAYS:
        raise ConfigError(f"backfill of {days} days is over the limit of {MAX_DAYS}; split it")
    return [start + dt.timedelta(days=i) for i in range(days)]


def backfill(
    pipeline: Pipeline, start: dt.date, end: dt.date, param: str = "day"
) -> list[RunRecord]:
    """A run per date (``param`` = the date as ``YYYY-MM-DD``), oldest first; a run whose key
    is taken already is returned as it is (``created`` False)."""
    return [pipeline.run(**{param: day.isoformat()}) for day in dates(start, end)]
