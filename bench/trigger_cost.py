"""What the pipeline hand-off trigger costs an ordinary job's state change, measured inside
the store (no worker, no network noise): the same single-row ``UPDATE ... SET state`` loop
on a table without and with a trigger shaped like ``faena_hand_off`` (SQLite, migration 8)
and ``jobs_hand_off`` (PostgreSQL, migration 12), whose ``WHEN`` is false for ordinary jobs.
One JSON line per (store, round): microseconds per row without and with.

    python bench/trigger_cost.py [--rows 50000] [--rounds 3] [--pg postgresql://...]
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import time

#: SQLite's (migration 8); PostgreSQL's is ``NEW.run_id IS NOT NULL`` alone (migration 12: one
#: trigger for both directions, the states tested in its function, which only steps reach)
WHEN = (
    "NEW.run_id IS NOT NULL AND NEW.state IN ('succeeded', 'dead', 'cancelled') "
    "AND OLD.state NOT IN ('succeeded', 'dead', 'cancelled')"
)
PG_WHEN = "NEW.run_id IS NOT NULL"


def sqlite_round(rows: int, trigger: bool) -> float:
    c = sqlite3.connect(":memory:", isolation_level=None)
    c.execute("CREATE TABLE j (id INTEGER PRIMARY KEY, state TEXT, e REAL, run_id TEXT)")
    c.execute("CREATE TABLE edges (up INTEGER, down INTEGER, PRIMARY KEY (up, down))")
    if trigger:
        c.execute(
            f"CREATE TRIGGER t AFTER UPDATE OF state ON j WHEN {WHEN} BEGIN "
            "UPDATE j SET e = 1 WHERE id IN (SELECT down FROM edges WHERE up = NEW.id); END"
        )
    c.executemany("INSERT INTO j VALUES (?, 'running', 0, NULL)", [(i,) for i in range(rows)])
    started = time.process_time()
    for i in range(rows):
        c.execute("UPDATE j SET state = 'succeeded', e = 1 WHERE id = ?", (i,))
    took = time.process_time() - started
    c.close()
    return took * 1e6 / rows


def pg_round(url: str, rows: int, trigger: bool) -> float:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("DROP SCHEMA IF EXISTS trigger_cost CASCADE")
        conn.execute("CREATE SCHEMA trigger_cost")
        conn.execute("CREATE TABLE trigger_cost.j (id int PRIMARY KEY, state text, "
                     "e double precision, run_id text)")  # fmt: skip
        conn.execute("INSERT INTO trigger_cost.j SELECT g, 'running', 0, NULL "
                     "FROM generate_series(1, %s) g", (rows,))  # fmt: skip
        if trigger:
            conn.execute("CREATE FUNCTION trigger_cost.h() RETURNS trigger LANGUAGE plpgsql "
                         "AS $$ BEGIN RETURN NULL; END $$")  # fmt: skip
            conn.execute(f"CREATE TRIGGER t AFTER UPDATE OF state ON trigger_cost.j FOR EACH ROW "
                         f"WHEN ({PG_WHEN}) EXECUTE FUNCTION trigger_cost.h()")  # fmt: skip
        started = time.perf_counter()
        conn.execute("DO $$ BEGIN FOR i IN 1.." + str(rows) + " LOOP UPDATE trigger_cost.j "
                     "SET state = 'succeeded', e = 1 WHERE id = i; END LOOP; END $$")  # fmt: skip
        took = time.perf_counter() - started
        conn.execute("DROP SCHEMA trigger_cost CASCADE")
    return took * 1e6 / rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=50_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/test")
    args = parser.parse_args()
    for n in range(1, args.rounds + 1):
        for store, one in (
            ("sqlite", lambda t: sqlite_round(args.rows, t)),
            ("postgres", lambda t: pg_round(args.pg, args.rows, t)),
        ):
            without, with_ = one(False), one(True)
            line = {
                "store": store,
                "round": n,
                "rows": args.rows,
                "us_per_row_without": round(without, 2),
                "us_per_row_with": round(with_, 2),
            }
            print(json.dumps(line), flush=True)


if __name__ == "__main__":
    main()
