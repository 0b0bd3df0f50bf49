"""RQ on Redis.

RQ has no in-process concurrency (a worker runs one job at a time), so
"concurrency 2" is `rq worker-pool -n 2` (a pool manager process plus two
worker processes) with SimpleWorker, which runs jobs in the worker process
instead of forking a work horse per job.
"""

import sys

import common
import redis
import rq
from rq import Queue

JOB = "common.job_body"  # importable path, resolved by the worker


def queue():
    return Queue("default", connection=redis.Redis.from_url(common.REDIS_URL))


def main():
    q = queue()

    def enqueue_one(n):
        for _ in range(n):
            q.enqueue(JOB)

    def enqueue_bulk(n):
        step = 1000  # one pipeline per 1000 jobs
        for i in range(0, n, step):
            q.enqueue_many([Queue.prepare_data(JOB) for _ in range(min(step, n - i))])

    flags = ["-n", "2", "-w", "rq.worker.SimpleWorker", "-q", "-u", common.REDIS_URL, "default"]
    argv = [sys.executable, "-m", "rq.cli", "worker-pool", *flags]
    settings = (
        "default job options (result_ttl 500s); worker: rq "
        "worker-pool "
        + " ".join(flags).replace(common.REDIS_URL, "<db15>")
        + " (pool manager + 2 worker processes, no fork per job)"
    )
    common.run_all(
        "rq-redis",
        rq.__version__,
        settings,
        enqueue_one=enqueue_one,
        enqueue_bulk=enqueue_bulk,
        fill=enqueue_bulk,
        worker_argv=argv,
        enqueue_lat=lambda: q.enqueue(JOB, True),
        reset=common.flush_redis,
        bulk_note="bulk = Queue.enqueue_many(prepare_data x 1000) per call",
    )


if __name__ == "__main__":
    common.main_guard(main)
