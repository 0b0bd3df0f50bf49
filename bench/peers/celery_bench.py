"""Celery 5 on Redis: threads and prefork pools, concurrency 2.

usage: python celery_bench.py [threads|prefork ...]   (default: both)
This module is also the Celery app the worker imports (-A celery_bench).
BENCH_CELERY_PREFETCH sets worker_prefetch_multiplier (default 1; Celery's own default is 4);
the system name then ends in -prefetchN.
"""

import os
import sys

import celery
import common
from celery import Celery, group

app = Celery("celery_bench", broker=common.REDIS_URL)
app.conf.update(
    task_acks_late=True,
    worker_prefetch_multiplier=int(os.environ.get("BENCH_CELERY_PREFETCH", "1")),
    task_ignore_result=True,
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
)


@app.task(name="noop", ignore_result=True)
def noop(lat=False):
    common.job_body(lat)


def enqueue_one(n):
    for _ in range(n):
        noop.apply_async()


def enqueue_bulk(n):
    group(noop.s() for _ in range(n)).apply_async()


def bench(pool):
    prefetch = app.conf.worker_prefetch_multiplier
    flags = [
        "--pool",
        pool,
        "-c",
        "2",
        "--prefetch-multiplier",
        str(prefetch),
        "--without-gossip",
        "--without-mingle",
        "--without-heartbeat",
    ]
    argv = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "celery_bench",
        "worker",
        "-l",
        "WARNING",
        "-Q",
        "celery",
        *flags,
    ]
    settings = (
        f"task_acks_late=True, worker_prefetch_multiplier={prefetch}, "
        "ignore_result, Redis broker; worker: " + " ".join(flags)
    )
    common.run_all(
        "celery-redis-" + pool + (f"-prefetch{prefetch}" if prefetch != 1 else ""),
        celery.__version__,
        settings,
        enqueue_one=enqueue_one,
        enqueue_bulk=enqueue_bulk,
        fill=enqueue_bulk,
        worker_argv=argv,
        enqueue_lat=lambda: noop.apply_async(kwargs={"lat": True}),
        reset=common.flush_redis,
        bulk_note="bulk = group(noop.s() x N).apply_async()",
    )


def main():
    pools = sys.argv[1:] or ["threads", "prefork"]
    failed = []
    for pool in pools:
        try:
            bench(pool)
        except Exception as e:
            common.log(f"celery {pool} failed: {e!r}")
            failed.append((pool, e))
    if failed:
        raise RuntimeError(f"failed: {failed!r}")


if __name__ == "__main__":
    common.main_guard(main)
