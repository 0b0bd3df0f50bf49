"""Metrics fed by events and read from the broker at scrape time (no I/O, no sleeping)."""

from __future__ import annotations

from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from faena.brokers.memory import MemoryBroker
from faena.brokers.protocol import Broker
from faena.core import events as ev
from faena.core.clock import ManualClock
from faena.core.job import NewJob
from faena.observability.metrics import (
    DURATION_BUCKETS,
    DesiredWorkers,
    JobMetrics,
    broker_collector,
    new_registry,
    render,
)


def samples(registry: CollectorRegistry) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(render(registry).decode()):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return samples(registry).get((name, tuple(sorted(labels.items()))))


def event(name: str, **fields: Any) -> ev.Event:
    base = {"worker": "w1", "job_id": "j1", "task": "etl.load", "queue": "etl", "pool": "etl_pool"}
    return ev.Event(name, 0.0, {**base, **fields})


@pytest.fixture
def jobs() -> tuple[CollectorRegistry, JobMetrics, ev.EventBus]:
    registry = new_registry(process=False)
    bus = ev.EventBus()
    metrics = JobMetrics(registry, task_names={"etl.load"}, max_error_types=2).attach(bus)
    return registry, metrics, bus


def test_attempt_ends_count_once_by_resulting_state(jobs: Any) -> None:
    registry, _, bus = jobs
    bus.publish(event(ev.JOB_CLAIMED, status="running"))
    bus.publish(event(ev.JOB_SUCCEEDED, status="succeeded", duration_ms=1500.0))
    bus.publish(event(ev.JOB_FAILED, status="failed", will_retry=True, error_type="ValueError"))
    bus.publish(event(ev.JOB_TIMEOUT, status="failed", will_retry=False, error_type="TimeoutError"))
    bus.publish(event(ev.JOB_DEAD, status="dead", error_type="TimeoutError"))  # same attempt
    bus.publish(event(ev.JOB_CANCELLED, status="cancelled", duration_ms=1.0))
    got = lambda status: value(  # noqa: E731
        registry, "worker_tasks_processed_total", queue="etl", task="etl.load", status=status
    )
    assert (got("succeeded"), got("failed"), got("dead"), got("cancelled")) == (1, 1, 1, 1)
    assert (
        value(
            registry,
            "worker_task_failures_total",
            queue="etl",
            task="etl.load",
            error_type="TimeoutError",
        )
        == 1
    )
    assert value(registry, "worker_task_duration_seconds_count", queue="etl", task="etl.load") == 2
    assert (
        value(
            registry, "worker_task_duration_seconds_bucket", queue="etl", task="etl.load", le="2.5"
        )
        == 2
    )
    assert (
        value(
            registry, "worker_task_duration_seconds_bucket", queue="etl", task="etl.load", le="1.0"
        )
        == 1
    )


def test_buckets_reach_etl_durations() -> None:
    assert DURATION_BUCKETS[0] <= 0.005
    assert max(DURATION_BUCKETS) >= 3600
    assert list(DURATION_BUCKETS) == sorted(DURATION_BUCKETS)


def test_lease_expiry_counts_as_a_failed_attempt_once(jobs: Any) -> None:
    registry, _, bus = jobs
    bus.publish(event(ev.LEASE_EXPIRED, status="queued"))
    bus.publish(event(ev.LEASE_EXPIRED, status="dead"))
    bus.publish(event(ev.JOB_DEAD, status="dead", error_type="WorkerLost"))  # follows the reap
    assert (
        value(
            registry,
            "worker_task_failures_total",
            queue="etl",
            task="etl.load",
            error_type="WorkerLost",
        )
        == 2
    )
    lbl = {"queue": "etl", "task": "etl.load"}
    assert value(registry, "worker_tasks_processed_total", status="failed", **lbl) == 1
    assert value(registry, "worker_tasks_processed_total", status="dead", **lbl) == 1


def test_labels_stay_bounded(jobs: Any) -> None:
    registry, _, bus = jobs
    for i in range(5):
        bus.publish(
            event(
                ev.JOB_FAILED,
                will_retry=True,
                error_type=f"E{i}",
                task=f"random.{i}",
                job_id=str(i),
            )
        )
    seen = samples(registry)
    error_types = {
        dict(k[1]).get("error_type") for k in seen if k[0] == "worker_task_failures_total"
    }
    assert error_types == {"E0", "E1", "other"}
    tasks = {dict(k[1]).get("task") for k in seen if k[0] == "worker_tasks_processed_total"}
    assert tasks == {"unregistered"}
    for name, labels in seen:
        assert not {"job_id", "worker", "task_id"} & {k for k, _ in labels}, name


def test_broker_collector_reads_queues_pools_and_dead_jobs() -> None:
    clock = ManualClock()
    broker = MemoryBroker(clock=clock)
    broker.setup()
    broker.set_pools({"etl_pool": 24, "dq_pool": 8})
    registry = new_registry(process=False)
    broker_collector(broker, queues=["idle"], registry=registry)
    broker.enqueue(
        [NewJob(task="t", queue="etl", pool="etl_pool", max_attempts=1) for _ in range(3)]
    )
    broker.enqueue([NewJob(task="t", queue="dq", run_at=clock.now() + 60)])
    clock.advance(7)
    claimed = broker.claim("w", ["etl"], 1, 30).jobs
    assert len(claimed) == 1
    assert value(registry, "faena_broker_up") == 1
    assert value(registry, "celery_queue_length", queue="etl") == 2
    assert value(registry, "celery_queue_length", queue="dq") == 0
    assert value(registry, "faena_jobs_scheduled", queue="dq") == 1
    assert value(registry, "celery_queue_length", queue="idle") == 0
    assert value(registry, "faena_queue_oldest_job_age_seconds", queue="etl") == 7
    assert value(registry, "faena_pool_slots", pool="etl_pool") == 24
    assert value(registry, "faena_pool_slots_used", pool="etl_pool") == 1
    assert value(registry, "faena_jobs_running", queue="etl") == 1
    clock.advance(31)  # lease lost, max_attempts=1: the reaper kills the job
    broker.reap()
    assert value(registry, "faena_jobs_dead", queue="etl") == 1
    for job in broker.claim("w", ["etl"], 10, 30).jobs:
        from faena.core import outcomes

        broker.finish([outcomes.success(job, "null")])
    # an emptied queue keeps reporting 0 instead of vanishing
    assert value(registry, "celery_queue_length", queue="etl") == 0


class BrokenBroker(MemoryBroker):
    def queue_stats(self) -> Any:
        raise ConnectionError("store is down")


def test_broker_error_does_not_fail_the_scrape() -> None:
    registry = new_registry(process=False)
    DesiredWorkers(registry).set("etl_pool", 3)
    broker: Broker = BrokenBroker()
    broker_collector(broker, registry=registry)
    assert value(registry, "faena_broker_up") == 0
    assert value(registry, "faena_desired_workers", pool="etl_pool") == 3
    assert value(registry, "celery_queue_length", queue="etl") is None


def test_registry_is_never_the_global_one() -> None:
    from prometheus_client import REGISTRY

    registry = new_registry()
    assert registry is not REGISTRY
    text = render(registry).decode()
    assert "process_resident_memory_bytes" in text
    assert "process_cpu_seconds_total" in text
