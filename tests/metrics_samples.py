"""What a ``--processes`` child serves, and the samples merging it gives, for the merge's
unit tests and its file-reading tests."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest


def exposition(processed: float, observed: list[float], queue_length: float, running: float) -> str:
    """What one child serves: a counter, a histogram, a broker gauge, a per-process gauge."""
    r = CollectorRegistry()
    Counter("worker_tasks_processed", "attempts", ["queue"], registry=r).labels("q").inc(processed)
    h = Histogram("worker_task_duration_seconds", "run time", ["queue"], buckets=(1.0,), registry=r)
    for value in observed:
        h.labels("q").observe(value)
    Gauge("celery_queue_length", "jobs waiting", ["queue"], registry=r).labels("q").set(
        queue_length
    )
    Gauge("faena_worker_jobs_running", "running", registry=r).set(running)
    return generate_latest(r).decode()


PROCESSED = ("worker_tasks_processed_total", (("queue", "q"),))
COUNT = ("worker_task_duration_seconds_count", (("queue", "q"),))
BUCKET_1 = ("worker_task_duration_seconds_bucket", (("le", "1.0"), ("queue", "q")))
LENGTH = ("celery_queue_length", (("queue", "q"),))
RUNNING = ("faena_worker_jobs_running", ())
