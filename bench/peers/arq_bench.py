"""arq on Redis: one asyncio worker process, max_jobs=2.

arq has no blocking dequeue: the worker polls the queue every
``poll_delay`` (default 0.5 s), reading up to ``queue_read_limit`` (default
max(5*max_jobs, 100)) job ids per poll.  Two variants are reported:
``arq-redis`` (defaults) and ``arq-redis-poll5ms`` (poll_delay=0.005).

usage: python arq_bench.py [default|poll5ms ...]   (default: both)
"""

import asyncio
import os
import sys

import arq
import common
from arq.connections import RedisSettings, create_pool

try:
    from importlib.metadata import version as _v

    VERSION = _v("arq")
except Exception:
    VERSION = getattr(arq, "VERSION", "?")

REDIS = RedisSettings.from_dsn(common.REDIS_URL)


async def noop(ctx, lat=False):
    common.job_body(lat)


async def _quiet(ctx):
    # arq logs two INFO lines per job by default; the other peers log no
    # per-job lines, so keep arq at WARNING as well.
    import logging

    logging.getLogger("arq").setLevel(logging.WARNING)


class WorkerSettings:
    on_startup = _quiet
    functions = [noop]
    redis_settings = REDIS
    max_jobs = 2
    poll_delay = float(os.environ.get("BENCH_ARQ_POLL_DELAY", 0.5))


def bench(variant):
    loop = asyncio.new_event_loop()
    pool = loop.run_until_complete(create_pool(REDIS))

    async def _enq(n):
        for _ in range(n):
            await pool.enqueue_job("noop")

    def enqueue_one(n):
        loop.run_until_complete(_enq(n))

    poll = "0.5" if variant == "default" else "0.005"
    env = {"BENCH_ARQ_POLL_DELAY": poll}
    argv = [os.path.join(os.path.dirname(sys.executable), "arq"), "arq_bench.WorkerSettings"]
    settings = (
        f"async job, max_jobs=2, poll_delay={poll}s, queue_read_limit=100 "
        "(default), keep_result=3600s (default), arq logger at WARNING; "
        "worker: arq "
        "arq_bench.WorkerSettings (one process)"
    )
    system = "arq-redis" if variant == "default" else "arq-redis-poll5ms"
    try:
        common.run_all(
            system,
            VERSION,
            settings,
            enqueue_one=enqueue_one,
            enqueue_bulk=None,
            fill=enqueue_one,
            worker_argv=argv,
            env=env,
            enqueue_lat=lambda: loop.run_until_complete(pool.enqueue_job("noop", True)),
            reset=common.flush_redis,
            bulk_note="arq has no bulk enqueue API",
            # With the default 0.5 s poll, drain is bound at ~100 jobs per poll
            # and every lockstep latency sample is ~poll_delay: smaller N
            # (5,000 / 60, recorded in "n") keep the run ~200 s shorter.
            n_drain=min(5000, common.N_DRAIN) if variant == "default" else None,
            n_lat=min(60, common.N_LAT) if variant == "default" else None,
        )
    finally:
        loop.run_until_complete(pool.aclose())
        loop.close()


def main():
    failed = []
    for variant in sys.argv[1:] or ["default", "poll5ms"]:
        try:
            bench(variant)
        except Exception as e:
            common.log(f"arq {variant} failed: {e!r}")
            failed.append((variant, e))
    if failed:
        raise RuntimeError(f"failed: {failed!r}")


if __name__ == "__main__":
    common.main_guard(main)
