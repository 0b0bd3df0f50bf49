"""``job_stats``'s per-minute counts, the two ways, interleaved, on one store filled by
``bench/console_pages.py --keep`` (SQLite or PostgreSQL, upgraded to the counters).

    python bench/stats_counts.py --url sqlite:////tmp/faena-console-pages-…/bench.db
    python bench/stats_counts.py --url 'postgresql://…/test?schema=bench_…' --rounds 20

``jobs``: the statement before SQLite migration 11 and PostgreSQL migration 14, a range of the
finished jobs by ``finished_at`` grouped by minute and state (it grows with the jobs finished
in the window). ``counters``: this faena's, a range of ``job_minutes`` (minutes x queues x
series rows, and shards on PostgreSQL). Both read the same store in alternation, 60 minutes,
of all queues and of one; the percentiles' sample (unchanged) is left out. Prints one JSON
object per (way, queue): median, p95 and max milliseconds, and the rows each way read.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from faena.core import stats

SQLITE_JOBS = (
    "SELECT CAST(finished_at / 60 AS INTEGER) * 60, COUNT(*) FROM faena_jobs"
    " WHERE state = ? AND finished_at >= ? AND finished_at <= ?{queue} GROUP BY 1"
)
PG_JOBS = (
    "SELECT floor(j.finished_at / 60) * 60, j.state, count(*) FROM {schema}.jobs j"
    " WHERE j.state IN ('succeeded', 'dead', 'cancelled') AND j.finished_at >= %(since)s"
    " AND j.finished_at <= %(until)s{queue} GROUP BY 1, 2"
)


def ways(url: str, queue: str | None) -> dict[str, Callable[[float, float], int]]:
    """``{way: read(since, until) -> rows}`` for the store at ``url``."""
    from faena.brokers.url import open_broker

    broker: Any = open_broker(url)
    if url.startswith("sqlite:"):
        from faena.brokers.sqlite import stats as sqlite_stats

        conn = broker._store.read()
        extra, tail = ("", ()) if queue is None else (" AND queue = ?", (queue,))

        def jobs_sqlite(since: float, until: float) -> int:
            n = 0
            for state in stats.FINISHED_STATES:
                sql = SQLITE_JOBS.format(queue=extra)
                n += len(conn.execute(sql, (state.value, since, until, *tail)).fetchall())
            return n

        def counters_sqlite(since: float, until: float) -> int:
            sql = sqlite_stats.COUNT.format(queue=extra)
            return len(conn.execute(sql, (since, until, *tail)).fetchall())

        return {"jobs": jobs_sqlite, "counters": counters_sqlite}
    from faena.brokers.postgres import stats as pg_stats

    schema = broker.config.quoted_schema
    params: dict[str, Any] = {"queue": queue}
    where = "" if queue is None else " AND j.queue = %(queue)s"

    def run(sql: str, since: float, until: float) -> int:
        def go(c: Any) -> int:
            return len(c.execute(sql, {**params, "since": since, "until": until}).fetchall())

        return int(broker._db.run("bench", go))

    jobs_sql = PG_JOBS.format(schema=schema, queue=where)
    counters_sql = pg_stats._counts_sql(schema, queue is not None)
    return {
        "jobs": lambda s, u: run(jobs_sql, s, u),
        "counters": lambda s, u: run(counters_sql, s, u),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", required=True, help="a store console_pages.py --keep filled")
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--out", type=Path, help="also append the JSON lines to this file")
    args = parser.parse_args()
    since, until = stats.window(time.time(), 60)
    lines = []
    for queue in (None, "mail"):
        reads = ways(args.url, queue)
        times: dict[str, list[float]] = {name: [] for name in reads}
        rows: dict[str, int] = {}
        for _ in range(args.rounds):
            for name, read in reads.items():  # alternately, so both see the same load
                started = time.perf_counter()
                rows[name] = read(since, until)
                times[name].append((time.perf_counter() - started) * 1000)
        for name, ms in times.items():
            ordered = sorted(ms)
            p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
            lines.append(
                {
                    "way": name,
                    "queue": queue,
                    "rounds": args.rounds,
                    "rows": rows[name],
                    "median_ms": round(statistics.median(ordered), 2),
                    "p95_ms": round(p95, 2),
                    "max_ms": round(ordered[-1], 2),
                }
            )
    for line in lines:
        print(json.dumps(line), flush=True)
    if args.out:
        with args.out.open("a") as f:
            for line in lines:
                f.write(json.dumps(line) + "\n")


if __name__ == "__main__":
    main()
