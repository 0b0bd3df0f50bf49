"""What every backend's ``job_stats`` shares: the window, the bounds and the percentiles.

The window is ``minutes`` whole minutes ending with the current one (``since`` is the start of
the oldest, ``until`` is now). Counts are by ``finished_at`` and the job's state now. The run
and wait times are those of the most recent :data:`SAMPLE_LIMIT` jobs finished in the window
that ran (succeeded or dead with a ``started_at``); percentiles are linear interpolation
between the closest ranks, as PostgreSQL's ``percentile_cont`` computes them.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from faena.core import checks
from faena.core.job import Job
from faena.core.states import JobState
from faena.errors import ConfigError

#: the terminal states :meth:`OperatorStore.job_stats` counts per minute
FINISHED_STATES = (JobState.SUCCEEDED, JobState.DEAD, JobState.CANCELLED)


@dataclass(frozen=True, slots=True)
class MinuteCount:
    """Jobs that finished in the minute starting at ``minute`` (POSIX seconds, a multiple of
    60), by their state now."""

    minute: float
    succeeded: int
    dead: int
    cancelled: int
    #: counted from every job (``False``: scaled from a bounded sample, see guarantees)
    exact: bool = True


@dataclass(frozen=True, slots=True)
class Percentiles:
    """Linear-interpolation percentiles (PostgreSQL's ``percentile_cont``) of ``count``
    durations in seconds; ``None`` when there were none."""

    count: int
    p50: float | None
    p95: float | None
    p99: float | None


@dataclass(frozen=True, slots=True)
class JobStats:
    """What finished in a window of whole minutes ending now (``since`` to ``until``)."""

    since: float
    until: float
    queue: str | None
    #: one per minute of the window, oldest first (minutes with nothing are zeros)
    minutes: list[MinuteCount]
    #: ``finished_at - started_at`` of the sample (the last attempt's run)
    run_time: Percentiles
    #: ``started_at - run_at`` of the sample (how long the last attempt waited to start)
    wait_time: Percentiles
    #: the sample is the most recent jobs finished in the window that ran (succeeded or
    #: dead with a start), at most this many
    sample_limit: int


#: the longest window (a day of minutes)
MAX_MINUTES = 1440
#: most finished jobs whose run and wait times make the percentiles
SAMPLE_LIMIT = 10_000
#: states whose finished jobs ran (have run and wait times)
RAN = (JobState.SUCCEEDED, JobState.DEAD)

#: counts of one minute: ``{(minute start, state): n}``
Counts = Mapping[tuple[float, JobState], int]


def check_stats(minutes: int, queue: str | None) -> None:
    if isinstance(minutes, bool) or not isinstance(minutes, int):
        raise ConfigError(
            f"minutes={minutes!r}: give a whole number of minutes, 1 to {MAX_MINUTES}"
        )
    if not 1 <= minutes <= MAX_MINUTES:
        raise ConfigError(f"minutes={minutes!r}: the window is 1 to {MAX_MINUTES} minutes")
    if queue is not None:
        checks.check_text("queue", queue)


def window(now: float, minutes: int) -> tuple[float, float]:
    """``(since, until)``: the start of the oldest minute, and now."""
    return math.floor(now / 60) * 60 - (minutes - 1) * 60.0, now


def minute_of(at: float) -> float:
    return math.floor(at / 60) * 60.0


def percentile(ordered: Sequence[float], fraction: float) -> float:
    """``percentile_cont(fraction)`` of sorted values (at least one)."""
    at = fraction * (len(ordered) - 1)
    lo = math.floor(at)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (at - lo)


def percentiles(values: Iterable[float]) -> Percentiles:
    ordered = sorted(values)
    if not ordered:
        return Percentiles(0, None, None, None)
    p50, p95, p99 = (percentile(ordered, f) for f in (0.5, 0.95, 0.99))
    return Percentiles(len(ordered), p50, p95, p99)


def build(
    since: float,
    until: float,
    minutes: int,
    queue: str | None,
    counts: Counts,
    run: Percentiles,
    wait: Percentiles,
    estimated: frozenset[float] = frozenset(),
) -> JobStats:
    """The stats of a window from per-minute counts (minutes in ``estimated`` were scaled
    from a sample) and the percentiles."""
    series = []
    for n in range(minutes):
        start = since + 60.0 * n
        series.append(
            MinuteCount(
                start,
                counts.get((start, JobState.SUCCEEDED), 0),
                counts.get((start, JobState.DEAD), 0),
                counts.get((start, JobState.CANCELLED), 0),
                exact=start not in estimated,
            )
        )
    return JobStats(since, until, queue, series, run, wait, SAMPLE_LIMIT)


def durations(
    rows: Iterable[tuple[float | None, float | None, float | None]],
) -> tuple[Percentiles, Percentiles]:
    """Run and wait percentiles of ``(run_at, started_at, finished_at)`` rows."""
    runs, waits = [], []
    for run_at, started, finished in rows:
        if started is None or finished is None:
            continue
        runs.append(max(finished - started, 0.0))
        if run_at is not None:
            waits.append(max(started - run_at, 0.0))
    return percentiles(runs), percentiles(waits)


def in_memory(jobs: Iterable[Job], now: float, minutes: int, queue: str | None) -> JobStats:
    """The stats over jobs held in memory (the memory broker): every one is looked at."""
    check_stats(minutes, queue)
    since, until = window(now, minutes)
    counts: dict[tuple[float, JobState], int] = {}
    ran: list[Job] = []
    for job in jobs:
        if job.finished_at is None or job.finished_at < since or job.finished_at > until:
            continue
        if job.state not in FINISHED_STATES or (queue is not None and job.queue != queue):
            continue
        key = (minute_of(job.finished_at), job.state)
        counts[key] = counts.get(key, 0) + 1
        if job.state in RAN and job.started_at is not None:
            ran.append(job)
    ran.sort(key=lambda j: -(j.finished_at or 0.0))
    rows = [(j.run_at, j.started_at, j.finished_at) for j in ran[:SAMPLE_LIMIT]]
    run, wait = durations(rows)
    return build(since, until, minutes, queue, counts, run, wait)
