"""The SQLite broker's ``job_stats`` and ``search_jobs``: the per-minute counts are a range of
the counters ``faena_job_minutes`` (kept by the trigger of migration 11: minutes x queues x
series rows), the sample is the newest :data:`faena.core.stats.SAMPLE_LIMIT` rows of each
state that ran, read from the index ``faena_jobs_finished (state, finished_at, queue)`` newest
first; search pages are :func:`faena.brokers.sqlite.listing.keyset` ranges."""

from __future__ import annotations

import sqlite3

from faena.brokers.protocol import JobPage, JobSearch, JobStats
from faena.brokers.sqlite import listing
from faena.brokers.sqlite.rows import to_job
from faena.core import search as searching
from faena.core import stats
from faena.core.job import Job

COUNT = (
    "SELECT minute, series, SUM(n) FROM faena_job_minutes"
    " WHERE minute >= ? AND minute <= ?{queue} GROUP BY minute, series"
)
#: the counters of minutes before ? (prune)
PRUNE_MINUTES = "DELETE FROM faena_job_minutes WHERE minute < ?"
_SAMPLE = (
    "SELECT run_at, started_at, finished_at FROM faena_jobs"
    " WHERE state = ? AND finished_at >= ? AND finished_at <= ?{queue}"
    " AND started_at IS NOT NULL ORDER BY finished_at DESC LIMIT ?"
)


def job_stats(conn: sqlite3.Connection, now: float, minutes: int, queue: str | None) -> JobStats:
    stats.check_stats(minutes, queue)
    since, until = stats.window(now, minutes)
    extra = "" if queue is None else " AND queue = ?"
    tail: tuple[object, ...] = () if queue is None else (queue,)
    counts = stats.summed(conn.execute(COUNT.format(queue=extra), (since, until, *tail)))
    rows: list[tuple[float, float, float]] = []
    for state in stats.RAN:
        sql = _SAMPLE.format(queue=extra)
        rows += conn.execute(sql, (state.value, since, until, *tail, stats.SAMPLE_LIMIT)).fetchall()
    rows.sort(key=lambda r: -r[2])
    run, wait = stats.durations(rows[: stats.SAMPLE_LIMIT])
    return stats.build(since, until, minutes, queue, counts, run, wait)


def search_jobs(
    conn: sqlite3.Connection, search: JobSearch, limit: int, cursor: str | None
) -> JobPage:
    """One page of a search; every chunk is read in one read transaction of its own (the
    keyset keeps the pages consistent across them)."""

    filters = (search.state, search.queue, search.task)

    def scan(below: int | None, n: int) -> tuple[list[tuple[int, Job]], int | None]:
        rows = listing.keyset(conn, *filters, below, n)
        return searching.sql_chunk([(int(r[-1]), to_job(r)) for r in rows], n)

    def narrow(below: int | None, n: int) -> tuple[list[searching.Candidate], int | None]:
        rows = listing.keyset(conn, *filters, below, n, listing.NARROW)
        return rows, (int(rows[-1][0]) if len(rows) == n else None)

    def fetch(seqs: list[int]) -> dict[int, Job]:
        return listing.by_seq(conn, seqs)

    return searching.walk(scan, search, limit, cursor, (narrow, fetch))
