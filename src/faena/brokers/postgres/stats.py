"""The PostgreSQL broker's ``job_stats`` and ``search_jobs``.

The per-minute counts are a range of the counters ``job_minutes`` (migration 14: written by
the finish of ``exchange``, the reap and a trigger, one row per minute, queue, series and
writing backend), summed by minute and series; the percentiles are ``percentile_cont`` over
the newest :data:`faena.core.stats.SAMPLE_LIMIT` terminal jobs of the partial index
``jobs_finished (finished_at)`` that ran. Search pages are
:func:`faena.brokers.postgres.listing.keyset` ranges.
"""

from __future__ import annotations

from typing import Any

from faena.brokers.postgres import listing, rows
from faena.brokers.postgres.database import Conn, Database
from faena.brokers.protocol import JobPage, JobSearch, JobStats, Percentiles
from faena.core import search as searching
from faena.core import stats
from faena.core.job import Job

# the very predicate of the partial index jobs_finished, so the planner can use it
_TERMINAL = "j.state IN ('succeeded', 'dead', 'cancelled')"
_RANGE = f"{_TERMINAL} AND j.finished_at >= %(since)s AND j.finished_at <= %(until)s{{queue}}"


def _counts_sql(schema: str, queue: bool) -> str:
    where = "m.minute >= %(since)s AND m.minute <= %(until)s"
    where += " AND m.queue = %(queue)s" if queue else ""
    return (
        f"SELECT m.minute, m.series, sum(m.n) FROM {schema}.job_minutes m WHERE {where}"
        " GROUP BY m.minute, m.series"
    )


def _sample_sql(schema: str, queue: bool) -> str:
    where = _RANGE.format(queue=" AND j.queue = %(queue)s" if queue else "")
    cuts = "ARRAY[0.5, 0.95, 0.99]"
    return (
        "SELECT count(*),"
        f" percentile_cont({cuts}) WITHIN GROUP (ORDER BY greatest(finished_at - started_at, 0)),"
        f" percentile_cont({cuts}) WITHIN GROUP (ORDER BY greatest(started_at - run_at, 0))"
        " FROM (SELECT j.run_at, j.started_at, j.finished_at"
        f" FROM {schema}.jobs j WHERE {where}"
        " AND j.state IN ('succeeded', 'dead') AND j.started_at IS NOT NULL"
        " ORDER BY j.finished_at DESC LIMIT %(sample)s) s"
    )


def _percentiles(count: int, cuts: list[float] | None) -> Percentiles:
    if not count or cuts is None:
        return Percentiles(0, None, None, None)
    return Percentiles(count, float(cuts[0]), float(cuts[1]), float(cuts[2]))


def job_stats(db: Database, schema: str, now: float, minutes: int, queue: str | None) -> JobStats:
    stats.check_stats(minutes, queue)
    since, until = stats.window(now, minutes)
    params: dict[str, Any] = {"since": since, "until": until, "queue": queue}
    params["sample"] = stats.SAMPLE_LIMIT
    by_queue = queue is not None

    def run(conn: Conn) -> tuple[list[tuple[Any, ...]], tuple[Any, ...] | None]:
        counts = conn.execute(_counts_sql(schema, by_queue), params).fetchall()
        sample = conn.execute(_sample_sql(schema, by_queue), params).fetchone()
        return counts, sample

    found, sample = db.run("job_stats", run)
    counts = stats.summed(found)
    assert sample is not None
    n = int(sample[0])
    run_p, wait_p = _percentiles(n, sample[1]), _percentiles(n, sample[2])
    return stats.build(since, until, minutes, queue, counts, run_p, wait_p)


def search_jobs(
    db: Database, schema: str, search: JobSearch, limit: int, cursor: str | None
) -> JobPage:
    filters = (search.state, search.queue, search.task)

    def scan(below: int | None, n: int) -> tuple[list[tuple[int, Job]], int | None]:
        def run(conn: Conn) -> list[tuple[Any, ...]]:
            return listing.keyset(conn, schema, *filters, below, n)

        found = [(int(r[1]), rows.to_job(r)) for r in db.run("search_jobs", run)]
        return searching.sql_chunk(found, n)

    def narrow(below: int | None, n: int) -> tuple[list[searching.Candidate], int | None]:
        def run(conn: Conn) -> list[Any]:
            return listing.keyset(conn, schema, *filters, below, n, listing.NARROW)

        found = db.run("search_jobs", run)
        return found, (int(found[-1][0]) if len(found) == n else None)

    def fetch(seqs: list[int]) -> dict[int, Job]:
        def run(conn: Conn) -> list[Any]:
            return conn.execute(listing.by_seq(schema), {"seqs": seqs}).fetchall()

        return {int(r[1]): rows.to_job(r) for r in db.run("search_jobs", run)}

    return searching.walk(scan, search, limit, cursor, (narrow, fetch))
