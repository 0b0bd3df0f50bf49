"""What the counters of ``count_by_state`` (PostgreSQL migration 15, SQLite migration 12) cost
the write path, measured in one process without a worker: the broker's own ``enqueue``,
``claim``, ``heartbeat`` and ``finish`` of ``--batch`` jobs at a time, on two stores of this
tree, one of them with the counting triggers dropped, in alternating rounds. One JSON line per
round: microseconds of wall time per job of each call, with the triggers and without; then
the medians and their difference.

    python bench/count_triggers_cost.py --broker postgres --batch 1 --jobs 2000 --rounds 4
    python bench/count_triggers_cost.py --broker sqlite --batch 100 --jobs 20000
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

PG_URL = "postgresql://postgres@127.0.0.1:5432/test"
PG_TRIGGERS = ("jobs_count_inserted", "jobs_count_updated", "jobs_count_deleted")
SQLITE_TRIGGERS = ("faena_count_inserted", "faena_count_moved", "faena_count_deleted")


def open_pair(kind: str, folder: Path) -> tuple[Any, Any]:
    """Two fresh stores: with the counting triggers, and without them."""
    from faena.brokers.url import open_broker

    if kind == "sqlite":
        urls = [f"sqlite:///{folder / name}.db" for name in ("with", "without")]
    else:
        urls = [f"{PG_URL}?schema=tcost_{uuid.uuid4().hex[:10]}" for _ in range(2)]
    with_, without = (open_broker(u) for u in urls)
    for b in (with_, without):
        b.setup()
        b.set_pools({"default": 100_000})
    if kind == "sqlite":
        conn = sqlite3.connect(folder / "without.db")
        for name in SQLITE_TRIGGERS:
            conn.execute(f"DROP TRIGGER {name}")
        conn.commit()
        conn.close()
    else:
        import psycopg

        schema = urls[1].rsplit("=", 1)[1]
        with psycopg.connect(PG_URL, autocommit=True) as conn:
            for name in PG_TRIGGERS:
                conn.execute(f'DROP TRIGGER {name} ON "{schema}".jobs')
    return with_, without


CALLS = ("enqueue", "claim", "heartbeat", "finish")


def one_round(broker: Any, jobs: int, batch: int) -> dict[str, float]:
    """Microseconds per job of enqueue, claim, heartbeat and finish, ``batch`` at a time:
    each call's, and their sum (``all``)."""
    from faena.core.job import Lease, NewJob, Outcome
    from faena.core.states import JobState

    spent = dict.fromkeys(CALLS, 0.0)
    clock = time.perf_counter
    for _ in range(jobs // batch):
        t0 = clock()
        broker.enqueue([NewJob(task="t", queue="q") for _ in range(batch)])
        t1 = clock()
        got = broker.claim("w", ["q"], batch, 60.0).jobs
        t2 = clock()
        broker.heartbeat("w", [Lease(j.id, j.attempt) for j in got], 60.0)
        t3 = clock()
        broker.finish([Outcome(j.id, j.attempt, JobState.SUCCEEDED, result_json="1") for j in got])
        t4 = clock()
        for name, took in zip(CALLS, (t1 - t0, t2 - t1, t3 - t2, t4 - t3), strict=True):
            spent[name] += took
    per_job = {name: round(took / jobs * 1e6, 1) for name, took in spent.items()}
    return per_job | {"all": round(sum(spent.values()) / jobs * 1e6, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--broker", choices=["postgres", "sqlite"], required=True)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--jobs", type=int, default=2000, help="jobs per round")
    parser.add_argument("--rounds", type=int, default=4)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        with_, without = open_pair(args.broker, Path(tmp))
        try:
            one_round(with_, args.batch * 10, args.batch)  # warm both (prepared statements)
            one_round(without, args.batch * 10, args.batch)
            mine: list[dict[str, float]] = []
            bare: list[dict[str, float]] = []
            for n in range(args.rounds):
                order = [(with_, mine), (without, bare)]
                for broker, out in order if n % 2 == 0 else reversed(order):
                    out.append(one_round(broker, args.jobs, args.batch))
                line = {"broker": args.broker, "batch": args.batch, "round": n + 1}
                line |= {"us_per_job_with": mine[-1], "us_per_job_without": bare[-1]}
                print(json.dumps(line), flush=True)
            summary: dict[str, Any] = {"broker": args.broker, "batch": args.batch}
            summary["rounds"] = args.rounds
            for name in (*CALLS, "all"):
                a = statistics.median(r[name] for r in mine)
                b = statistics.median(r[name] for r in bare)
                summary[name] = {
                    "with": round(a, 1),
                    "without": round(b, 1),
                    "diff": round(a - b, 1),
                }
            print(json.dumps(summary), flush=True)
        finally:
            for b in (with_, without):
                getattr(b, "destroy", lambda: None)()
                b.close()


if __name__ == "__main__":
    main()
