"""Procrastinate on PostgreSQL (psycopg 3 connector), one worker process,
concurrency 2 (async), LISTEN/NOTIFY on.

This module is also the app the worker imports (procrastinate_bench.app).
"""

import asyncio
import os
import sys

import common
import procrastinate

try:
    from importlib.metadata import version as _v

    VERSION = _v("procrastinate")
except Exception:
    VERSION = "?"

app = procrastinate.App(connector=procrastinate.PsycopgConnector(conninfo=common.PG_DSN))


@app.task(name="noop")
async def noop(lat=False):
    common.job_body(lat)


def reset():
    common.flush_redis()
    common.pg_exec("truncate procrastinate_jobs restart identity cascade")


def main():
    common.ensure_pg_db()
    # fresh schema for every run
    common.pg_exec("drop schema if exists public cascade; create schema public")
    common.pg_exec(app.schema_manager.get_schema())

    loop = asyncio.new_event_loop()
    loop.run_until_complete(app.open_async())

    async def _one(n):
        for _ in range(n):
            await noop.defer_async()

    async def _bulk(n):
        step = 1000
        for i in range(0, n, step):
            await noop.batch_defer_async(*([{}] * min(step, n - i)))

    flags = ["worker", "--concurrency", "2", "--listen-notify"]
    argv = [
        os.path.join(os.path.dirname(sys.executable), "procrastinate"),
        "--app",
        "procrastinate_bench.app",
        "--log-level",
        os.environ.get("BENCH_PROC_LOG", "warning"),
        "--log-format",
        "%(asctime)s %(levelname)s:%(name)s:%(message)s",
        *flags,
    ]
    settings = (
        "PsycopgConnector (psycopg {}), async task; worker: "
        "procrastinate --log-level warning {} (fetch_job_polling_interval=5s and "
        "delete_jobs=never: defaults)".format(_v("psycopg"), " ".join(flags))
    )
    try:
        common.run_all(
            "procrastinate-pg",
            VERSION,
            settings,
            enqueue_one=lambda n: loop.run_until_complete(_one(n)),
            enqueue_bulk=lambda n: loop.run_until_complete(_bulk(n)),
            fill=lambda n: loop.run_until_complete(_bulk(n)),
            worker_argv=argv,
            enqueue_lat=lambda: loop.run_until_complete(noop.defer_async(lat=True)),
            reset=reset,
            bulk_note="bulk = task.batch_defer_async(1000 jobs) per call",
            # Some lockstep samples wait for the 5 s fetch poll (a NOTIFY
            # lost in the worker, see README): 100 samples bound the run.
            n_lat=min(100, common.N_LAT),
        )
    finally:
        loop.run_until_complete(app.close_async())
        loop.close()


if __name__ == "__main__":
    common.main_guard(main)
