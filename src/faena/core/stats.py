"""What every backend's ``job_stats`` shares: the window, the bounds, the per-minute series
and the percentiles.

The window is ``minutes`` whole minutes ending with the current one (``since`` is the start of
the oldest, ``until`` is now). The per-minute counts are events, counted where they happen
(:func:`ending`): each attempt that ends (succeeded; failed or lost with attempts left, so
``retried``; ``dead``; ``cancelled``) and each waiting job cancelled, in the minute of the
store's clock at which the store accepted it, by queue. Every backend keeps them in counters
of ``(minute, queue, series)`` written in the same transaction or script as the change of
state (a write fenced out changes nothing and counts nothing), so reading a window costs
``minutes x series x queues`` counters (times the writing connections on PostgreSQL), not
one row per job. Counters go with :meth:`prune` (minutes before ``older_than``); Redis' also
expire after :data:`KEEP_SECONDS`. The run and wait times are those of the most recent
:data:`SAMPLE_LIMIT` jobs finished in the window that ran (succeeded or dead with a
``started_at``); percentiles are linear interpolation between the closest ranks, as
PostgreSQL's ``percentile_cont`` computes them.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from faena.core import checks
from faena.core.job import Job
from faena.core.states import TERMINAL, JobState
from faena.errors import ConfigError

#: the terminal states
FINISHED_STATES = (JobState.SUCCEEDED, JobState.DEAD, JobState.CANCELLED)
#: an attempt that failed (or whose lease ran out) and will run again
RETRIED = "retried"
#: the per-minute series, in :class:`MinuteCount`'s order; the names the stores keep
SERIES = ("succeeded", RETRIED, "dead", "cancelled")
#: how long Redis keeps a minute's counters (its keys expire): the longest window and a day
KEEP_SECONDS = 2 * 86_400


@dataclass(frozen=True, slots=True)
class MinuteCount:
    """What ended in the minute starting at ``minute`` (POSIX seconds, a multiple of 60):
    attempts that succeeded, attempts that failed or were lost and will run again
    (``retried``), jobs that ended dead, and jobs cancelled (waiting ones when cancelled,
    running ones when their attempt ended)."""

    minute: float
    succeeded: int
    retried: int
    dead: int
    cancelled: int


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

#: counts of the window: ``{(minute start, series): n}``
Counts = Mapping[tuple[float, str], int]


def ending(old: JobState, new: JobState, tries_kept: bool = True) -> str | None:
    """The series a change of a job's state from ``old`` to ``new`` counts in, or ``None``.

    Into a terminal state from a live one: that state (an attempt ending so, or a waiting
    job cancelled, or a damaged job buried dead). A running job failing, or whose lease ran
    out with attempts left (back to ``queued`` with its try counted: ``tries_kept``), is
    ``retried``; a release (the try given back) and a retry by hand count nothing: what the
    job then does counts. The stores apply this very rule in SQL and Lua."""
    if new in TERMINAL:
        return None if old in TERMINAL else new.value
    if old is JobState.RUNNING and (
        new is JobState.FAILED or (new is JobState.QUEUED and tries_kept)
    ):
        return RETRIED
    return None


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
) -> JobStats:
    """The stats of a window from per-minute counts and the percentiles."""
    series = []
    for n in range(minutes):
        start = since + 60.0 * n
        series.append(MinuteCount(start, *(counts.get((start, name), 0) for name in SERIES)))
    return JobStats(since, until, queue, series, run, wait, SAMPLE_LIMIT)


def summed(rows: Iterable[tuple[float, str, int]]) -> dict[tuple[float, str], int]:
    """``{(minute, series): n}`` of counter rows ``(minute, series, n)`` (shards added up;
    a series this faena does not know is left out)."""
    counts: dict[tuple[float, str], int] = {}
    for minute, name, n in rows:
        if name in SERIES:
            key = (float(minute), str(name))
            counts[key] = counts.get(key, 0) + int(n)
    return counts


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


#: the memory broker's counters: ``{(minute, queue, series): n}``
Counters = dict[tuple[float, str, str], int]


def count(counters: Counters, at: float, queue: str, name: str) -> None:
    """One event of series ``name`` in ``queue`` at ``at`` (the memory broker's counters)."""
    key = (minute_of(at), queue, name)
    counters[key] = counters.get(key, 0) + 1


def forget(counters: Counters, older_than: float) -> None:
    """Drop the counters of minutes that began before ``older_than``."""
    for key in [k for k in counters if k[0] < older_than]:
        del counters[key]


def in_memory(
    jobs: Iterable[Job], counters: Counters, now: float, minutes: int, queue: str | None
) -> JobStats:
    """The stats of the memory broker: its counters, and every job looked at for the
    sample."""
    check_stats(minutes, queue)
    since, until = window(now, minutes)
    counts = summed(
        (m, name, n)
        for (m, q, name), n in counters.items()
        if since <= m <= until and (queue is None or q == queue)
    )
    ran: list[Job] = []
    for job in jobs:
        if job.finished_at is None or job.finished_at < since or job.finished_at > until:
            continue
        if queue is not None and job.queue != queue:
            continue
        if job.state in RAN and job.started_at is not None:
            ran.append(job)
    ran.sort(key=lambda j: -(j.finished_at or 0.0))
    rows = [(j.run_at, j.started_at, j.finished_at) for j in ran[:SAMPLE_LIMIT]]
    run, wait = durations(rows)
    return build(since, until, minutes, queue, counts, run, wait)
