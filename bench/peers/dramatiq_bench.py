"""Dramatiq on Redis: one worker process with 2 threads.

This module is also the module the dramatiq worker imports.
"""

import sys

import common
import dramatiq
from dramatiq.brokers.redis import RedisBroker

broker = RedisBroker(url=common.REDIS_URL)
dramatiq.set_broker(broker)


@dramatiq.actor(actor_name="noop", max_retries=0)
def noop(lat=False):
    common.job_body(lat)


def enqueue_one(n):
    for _ in range(n):
        noop.send()


def enqueue_bulk(n):
    # dramatiq has no multi-message enqueue: group.run() calls
    # broker.enqueue() (one Lua script call) per message.
    dramatiq.group(noop.message() for _ in range(n)).run()


def main():
    flags = ["--processes", "1", "--threads", "2"]
    argv = [sys.executable, "-m", "dramatiq", "dramatiq_bench", *flags]
    settings = (
        "RedisBroker, default middleware, max_retries=0, "
        "queue_prefetch=2*threads (default), worker_timeout=1000ms "
        "(default); worker: dramatiq " + " ".join(flags)
    )
    common.run_all(
        "dramatiq-redis",
        dramatiq.__version__,
        settings,
        enqueue_one=enqueue_one,
        enqueue_bulk=enqueue_bulk,
        fill=enqueue_bulk,
        worker_argv=argv,
        enqueue_lat=lambda: noop.send(True),
        reset=common.flush_redis,
        bulk_note="bulk = dramatiq.group(noop.message() x N).run() "
        "(no batched enqueue in dramatiq; one EVALSHA per message)",
    )


if __name__ == "__main__":
    common.main_guard(main)
