"""Prometheus metrics under the seed's names, in a registry per process (never the global one).

Three sources feed a registry:

* :class:`JobMetrics`, a worker middleware, counts the end of every attempt in its
  ``after_execute`` (``worker_tasks_processed_total``, ``worker_task_failures_total``,
  ``worker_task_duration_seconds``), and the reaped leases from the app's event bus.
  Process-isolated jobs are recorded by the parent worker, where ``after_execute`` runs, so
  no number is lost in a child process. (``attach`` feeds it from the bus's events instead.)
* :class:`~faena.observability.metrics_broker.BrokerCollector` reads queues and pools from the
  broker at scrape time (``celery_queue_length``, ``faena_pool_slots`` ...).
* :class:`WorkerStateCollector` reports one worker's state and queues (``faena_workers``,
  ``faena_queue_workers``), and :class:`DesiredWorkers` is set by a supervisor.

Labels are bounded: queue, task (registered names only), pool, status, error type (the first
``max_error_types`` names, then ``other``); never a job id or a worker id.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from faena.core import events as ev
from faena.core.clock import Clock
from faena.core.middleware import Attempt, Middleware
from faena.core.states import JobState
from faena.observability.metrics_broker import BrokerCollector, BrokerSource
from faena.observability.metrics_http import MetricsServer, serve
from faena.observability.metrics_pipelines import PipelineCollector
from faena.observability.metrics_schedules import register_schedule_metrics

if TYPE_CHECKING:
    from faena.app import App
    from faena.worker.runtime import Worker

__all__ = [
    "DURATION_BUCKETS",
    "BrokerCollector",
    "DesiredWorkers",
    "JobMetrics",
    "MetricsServer",
    "WorkerStateCollector",
    "broker_collector",
    "new_registry",
    "render",
    "start_worker_metrics",
]

#: seconds; from a 5 ms task to an hour-long ETL load (the client default stops at 10 s)
DURATION_BUCKETS = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
    30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 1800.0, 3600.0,
)  # fmt: skip
DEFAULT_MAX_ERROR_TYPES = 20
OTHER = "other"
UNREGISTERED = "unregistered"
WORKER_STATES = ("starting", "ready", "draining", "stopped")

# what the end of an attempt means for the status label (the job state it led to)
_ATTEMPT_END = (ev.JOB_SUCCEEDED, ev.JOB_FAILED, ev.JOB_TIMEOUT, ev.JOB_CANCELLED)


def new_registry(*, process: bool = True) -> CollectorRegistry:
    """A fresh registry, with the process collector (``process_cpu_seconds_total``,
    ``process_resident_memory_bytes`` ...) and ``python_info`` unless ``process=False``."""
    registry = CollectorRegistry(auto_describe=True)
    if process:
        ProcessCollector(registry=registry)
        PlatformCollector(registry=registry)
    return registry


def render(registry: CollectorRegistry) -> bytes:
    """The registry in Prometheus text format (``CONTENT_TYPE_LATEST``)."""
    return bytes(generate_latest(registry))


def broker_collector(
    broker: BrokerSource,
    queues: Iterable[str] = (),
    registry: CollectorRegistry | None = None,
    clock: Clock | None = None,
) -> BrokerCollector:
    """A scrape-time collector of the broker's queues and pools (for the server's registry),
    and of its pipeline runs (:mod:`faena.observability.metrics_pipelines`; ``clock`` is the
    store's, the system clock by default)."""
    collector = BrokerCollector(broker, queues)
    if registry is not None:
        registry.register(collector)
        registry.register(PipelineCollector(broker, clock))
    return collector


class JobMetrics(Middleware):
    """Counters and the duration histogram, fed by a worker as its middleware
    (``worker.middleware.add(metrics)`` and :meth:`attach_reaped`), or by the events of an
    app's bus (:meth:`attach`; not both).

    ``status`` is the state the attempt led to: ``succeeded``, ``failed`` (will retry),
    ``dead`` (no attempts left) or ``cancelled``. An attempt lost with its worker is counted
    by whichever worker reaps the expired lease (``error_type`` ``WorkerLost``).
    """

    def __init__(
        self,
        registry: CollectorRegistry,
        *,
        task_names: Iterable[str] | None = None,
        max_error_types: int = DEFAULT_MAX_ERROR_TYPES,
    ) -> None:
        self.task_names = None if task_names is None else frozenset(task_names)
        self.max_error_types = max_error_types
        self._error_types: set[str] = set()
        self._lock = threading.Lock()
        self.processed = Counter(
            "worker_tasks_processed",
            "Attempts that ended, by the state they led to",
            ["queue", "task", "status"],
            registry=registry,
        )
        self.failures = Counter(
            "worker_task_failures",
            "Attempts that failed (raised, timed out or lost their worker), by error type",
            ["queue", "task", "error_type"],
            registry=registry,
        )
        self.duration = Histogram(
            "worker_task_duration_seconds",
            "Run time of attempts that ended on this worker",
            ["queue", "task"],
            buckets=DURATION_BUCKETS,
            registry=registry,
        )

    def attach(self, bus: ev.EventBus) -> JobMetrics:
        """Count from the events of ``bus``: attempt ends and reaped leases."""
        for name in (*_ATTEMPT_END, ev.LEASE_EXPIRED):
            bus.subscribe(name, self.handle)
        return self

    def attach_reaped(self, bus: ev.EventBus) -> JobMetrics:
        """Count the reaped leases of ``bus`` (attempt ends come through ``after_execute``)."""
        bus.subscribe(ev.LEASE_EXPIRED, self.handle)
        return self

    def after_execute(self, attempt: Attempt) -> None:
        if not attempt.accepted:
            return  # the lease was lost: the worker that reaps it counts the attempt
        job, o = attempt.job, attempt.outcome
        if o.state is JobState.SUCCEEDED:
            status, error = "succeeded", None
        elif o.state is JobState.CANCELLED:
            status, error = "cancelled", None
        else:
            status = "failed" if o.state is JobState.FAILED else "dead"
            error = o.error.type if o.error is not None else None
            error = error or "Exception"
        self._count(job.queue, job.task, status, error, attempt.duration)

    def handle(self, event: ev.Event) -> None:
        f = event.fields
        queue = f.get("queue")
        task = f.get("task")
        if event.name == ev.LEASE_EXPIRED:
            if f.get("status") not in ("queued", "dead"):
                return
            status = "dead" if f.get("status") == "dead" else "failed"
            self._count(queue, task, status, "WorkerLost", None, bounded=True)
            return
        error = None
        if event.name == ev.JOB_SUCCEEDED:
            status = "succeeded"
        elif event.name == ev.JOB_CANCELLED:
            status = "cancelled"
        else:
            status = "failed" if f.get("will_retry") else "dead"
            error = f.get("error_type") or "Exception"
        ms = f.get("duration_ms")
        seconds = ms / 1000.0 if isinstance(ms, int | float) and ms >= 0 else None
        self._count(queue, task, status, error, seconds)

    def _count(
        self,
        queue_name: object,
        task_name: object,
        status: str,
        error: object,
        seconds: float | None,
        *,
        bounded: bool = False,
    ) -> None:
        """One attempt's end; ``error`` is None unless it failed (``bounded``: a name of
        faena's own, not counted against ``max_error_types``)."""
        queue = str(queue_name or "default")
        task = self._task(task_name)
        if error is not None:
            error_type = str(error) if bounded else self._error_type(error)
            self.failures.labels(queue, task, error_type).inc()
        self.processed.labels(queue, task, status).inc()
        if seconds is not None and seconds >= 0:
            self.duration.labels(queue, task).observe(seconds)

    def _task(self, name: Any) -> str:
        text = str(name or UNREGISTERED)
        if self.task_names is not None and text not in self.task_names:
            return UNREGISTERED
        return text

    def _error_type(self, name: Any) -> str:
        text = str(name or "Exception")[:120]
        with self._lock:
            if text in self._error_types:
                return text
            if len(self._error_types) < self.max_error_types:
                self._error_types.add(text)
                return text
        return OTHER


class WorkerStateCollector(Collector):
    """One worker's state (``faena_workers{state}``: 1 for the current state, 0 for the
    others, so ``sum by (state)`` over all workers counts them), the queues it consumes
    (``faena_queue_workers{queue}``), its jobs running now and its concurrency."""

    def __init__(self, worker: Worker, bus: ev.EventBus) -> None:
        self.worker = worker
        self.state = "ready" if worker.ready else "starting"
        self._lock = threading.Lock()
        for name in ev.ALL_EVENTS:
            bus.subscribe(name, self._on_event)

    def _on_event(self, event: ev.Event) -> None:
        if event.fields.get("worker") != self.worker.name:
            return
        with self._lock:
            if event.name == ev.WORKER_STARTED:
                self.state = "ready"
            elif event.name == ev.WORKER_STOPPING:
                self.state = "draining"
            elif event.name == ev.WORKER_STOPPED:
                self.state = "stopped"

    def describe(self) -> Iterable[GaugeMetricFamily]:
        return []

    def collect(self) -> Iterator[GaugeMetricFamily]:
        with self._lock:
            state = self.state
        running = self.worker.jobs_running
        workers = GaugeMetricFamily(
            "faena_workers",
            "Workers by state (each worker reports 1 for its state)",
            labels=["state"],
        )
        for name in WORKER_STATES:
            workers.add_metric([name], 1 if name == state else 0)
        consuming = GaugeMetricFamily(
            "faena_queue_workers",
            "Workers consuming the queue (each ready or draining worker reports 1)",
            labels=["queue"],
        )
        alive = 1 if state in ("ready", "draining") else 0
        for queue in sorted(self.worker.queues):
            consuming.add_metric([queue], alive)
        jobs = GaugeMetricFamily("faena_worker_jobs_running", "Jobs running on this worker")
        jobs.add_metric([], running)
        slots = GaugeMetricFamily("faena_worker_concurrency", "Jobs this worker may run at once")
        slots.add_metric([], self.worker.concurrency)
        yield from (workers, consuming, jobs, slots)


class DesiredWorkers:
    """``faena_desired_workers{pool}``: the worker count a supervisor wants, per pool."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.gauge = Gauge(
            "faena_desired_workers",
            "Workers the autoscaler wants, per pool (compare with faena_workers)",
            ["pool"],
            registry=registry,
        )

    def set(self, pool: str, replicas: int) -> None:
        self.gauge.labels(pool).set(replicas)

    def remove(self, pool: str) -> None:
        with contextlib.suppress(KeyError):
            self.gauge.remove(pool)


def worker_registry(app: App, worker: Worker) -> CollectorRegistry:
    """A registry with everything a worker exports (see the module docstring)."""
    registry = new_registry()
    metrics = JobMetrics(registry, task_names=app.tasks).attach_reaped(app.events)
    worker.middleware.add(metrics)  # innermost: counts each attempt before its log line
    registry.register(WorkerStateCollector(worker, app.events))
    registry.register(BrokerCollector(lambda: app.broker, worker.queues))
    register_schedule_metrics(registry, app.schedules, app.events, lambda: app.broker)
    return registry


def start_worker_metrics(
    app: App, worker: Worker, port: int, addr: str = "127.0.0.1"
) -> MetricsServer:
    """Serve ``/metrics``, ``/healthz`` and ``/readyz`` (from ``worker.ready``) for one worker
    on ``addr:port`` in a daemon thread. Call before ``worker.run()``; ``close()`` after.
    ``port`` 0 picks a free port (``.port`` says which)."""
    registry = worker_registry(app, worker)
    return serve(registry, port, addr, ready=lambda: bool(worker.ready))
