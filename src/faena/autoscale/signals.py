"""What the local supervisor measures, shaped as the HPA's metrics APIs would return it.

A worker process plays the part of a pod. Each sync period the supervisor takes one
:class:`Signals` snapshot (queue depth from the broker, CPU and memory of every worker process
from psutil, which workers are ready); :func:`observe` turns it into the
:class:`~faena.autoscale.hpa.Observation` that :func:`faena.autoscale.hpa.reconcile` consumes.
Everything here except :class:`ProcessSampler` and :func:`queue_depths` is pure.

Mapping (see ``docs/autoscaling.md``, "Local supervisor"):

* ``External`` metric named ``celery_queue_length``: one series per queue that the metric's
  selector matches (label ``queue``), each the number of jobs **waiting** in that queue; the
  HPA sums them. No selector: every queue.
* ``Pods`` metric named ``celery_queue_length``: every worker reports the whole (matched)
  queue, as the seed's exporter does. Reproduced faithfully, so it asks for N times too many
  workers; :func:`pitfalls` names it so the supervisor can warn.
* ``Object`` metric named ``celery_queue_length``: the summed queue, once.
* ``Resource`` ``cpu``: millicores used by the worker process and its children over the last
  window; ``memory``: their resident set size. Requests come from the Deployment (or
  :data:`DEFAULT_REQUESTS`).
* Any other metric gets an error reading (upstream: the metrics API call fails).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

import psutil

from faena.autoscale.deployment import DeploymentResources
from faena.autoscale.hpa import MetricReading, Observation
from faena.autoscale.hpa_calc import PodInfo, PodPhase, PodSample
from faena.autoscale.spec import (
    ExternalMetric,
    HPASpec,
    LabelSelector,
    MetricSpec,
    ObjectMetric,
    PodsMetric,
    ResourceMetric,
)
from faena.brokers.protocol import QueueStat

#: metric names fed with the broker's queue depth
QUEUE_METRICS = frozenset({"celery_queue_length"})
QUEUE_LABEL = "queue"


@dataclass(frozen=True)
class Requests:
    """Per-worker ``resources.requests``: the denominators of ``Utilization`` targets.
    ``None``: no request for that resource (a Utilization target on it then fails)."""

    cpu_milli: int | None
    memory_milli: int | None

    @classmethod
    def from_deployment(cls, deployment: DeploymentResources | None) -> Requests:
        if deployment is None:
            return DEFAULT_REQUESTS
        return cls(deployment.cpu_request_milli, deployment.memory_request_milli)

    def as_pairs(self) -> tuple[tuple[str, int | None], ...]:
        return (("cpu", self.cpu_milli), ("memory", self.memory_milli))


#: without a Deployment: one core (a Python worker runs its jobs' Python code on about one
#: core) and 512 MiB per worker process
DEFAULT_REQUESTS = Requests(cpu_milli=1000, memory_milli=512 * 2**20 * 1000)


@dataclass(frozen=True)
class WorkerView:
    """One worker process as the HPA would see its pod.

    ``ready_at`` is when the worker reported ``worker.started`` (``None``: not yet ready);
    ``draining``: it was sent SIGTERM (a pod with a deletion timestamp). ``cpu`` (millicores)
    and ``memory`` (bytes, in milli-units) are ``None`` until a full sample window exists.
    """

    name: str
    started_at: float
    ready_at: float | None = None
    draining: bool = False
    cpu: PodSample | None = None
    memory: PodSample | None = None


@dataclass(frozen=True)
class Signals:
    """One snapshot. ``queues``: waiting jobs per queue; ``queue_error``: the broker failed."""

    taken_at: float
    workers: tuple[WorkerView, ...] = ()
    queues: Mapping[str, int] | None = None
    queue_error: str | None = None


def pod_info(worker: WorkerView, requests: Requests) -> PodInfo:
    """A started process is a Running pod; Ready once it reported ``worker.started``.

    The CPU rules of the HPA then apply to it: during the CPU initialization period only a
    sample whose whole window came after the readiness transition counts.
    """
    ready = worker.ready_at is not None
    return PodInfo(
        name=worker.name,
        phase=PodPhase.RUNNING,
        ready=ready,
        deleting=worker.draining,
        start_time=worker.started_at,
        ready_transition_time=worker.ready_at if worker.ready_at is not None else worker.started_at,
        requests_milli=requests.as_pairs(),
    )


def _selected(selector: LabelSelector | None, queues: Iterable[str]) -> list[str]:
    return sorted(q for q in queues if selector is None or selector.matches({QUEUE_LABEL: q}))


def queue_series_milli(
    selector: LabelSelector | None, queues: Mapping[str, int]
) -> tuple[int, ...]:
    """One series per matched queue, in milli-units (the External metrics API's answer)."""
    return tuple(queues[q] * 1000 for q in _selected(selector, queues))


def _queue_reading(metric: MetricSpec, signals: Signals) -> MetricReading:
    if signals.queues is None:
        return MetricReading(error=f"reading the queues failed: {signals.queue_error}")
    selector = getattr(metric, "selector", None)
    series = queue_series_milli(selector, signals.queues)
    if isinstance(metric, ExternalMetric):
        return MetricReading(values_milli=series)
    total = sum(series)
    if isinstance(metric, ObjectMetric):
        return MetricReading(value_milli=total)
    # Pods: every worker exports the whole queue (the seed's exporter), one sample per pod
    return MetricReading(
        pod_samples={
            w.name: PodSample(total, signals.taken_at, 0.0)
            for w in signals.workers
            if not w.draining
        }
    )


def _resource_reading(metric: ResourceMetric, signals: Signals) -> MetricReading:
    samples: dict[str, PodSample] = {}
    for w in signals.workers:
        sample = w.cpu if metric.name == "cpu" else w.memory
        if sample is not None:
            samples[w.name] = sample
    return MetricReading(pod_samples=samples)


def reading(metric: MetricSpec, signals: Signals) -> MetricReading:
    """What the metrics API would return for one metric of the spec."""
    name = getattr(metric, "name", "")
    if isinstance(metric, ResourceMetric) and name in ("cpu", "memory"):
        return _resource_reading(metric, signals)
    if isinstance(metric, ExternalMetric | ObjectMetric | PodsMetric) and name in QUEUE_METRICS:
        return _queue_reading(metric, signals)
    return MetricReading(
        error=f"the local supervisor has no signal for {metric.kind} metric {name!r}; it "
        f"serves {sorted(QUEUE_METRICS)} (queue depth) and the cpu and memory resources"
    )


def observe(spec: HPASpec, spec_replicas: int, signals: Signals, requests: Requests) -> Observation:
    """The Observation for one reconcile: ``spec_replicas`` is the supervisor's desired count,
    ``status_replicas`` the worker processes not draining."""
    return Observation(
        spec_replicas=spec_replicas,
        status_replicas=sum(1 for w in signals.workers if not w.draining),
        pods=tuple(pod_info(w, requests) for w in signals.workers),
        readings=tuple(reading(m, signals) for m in spec.metrics),
    )


def watched_queues(spec: HPASpec) -> set[str]:
    """Queues the spec's queue metrics name with ``matchLabels`` (reported even when empty)."""
    names: set[str] = set()
    for metric in spec.metrics:
        selector = getattr(metric, "selector", None)
        if getattr(metric, "name", "") in QUEUE_METRICS and selector is not None:
            names.update(v for k, v in selector.match_labels if k == QUEUE_LABEL)
    return names


def pitfalls(spec: HPASpec) -> list[str]:
    """Warnings about metrics that scale wrongly by construction (hpa-spec section 11)."""
    out: list[str] = []
    for metric in spec.metrics:
        if isinstance(metric, PodsMetric) and metric.name in QUEUE_METRICS:
            out.append(
                f"Pods metric {metric.name!r}: every worker reports the whole queue, so the HPA "
                f"averages Q over N workers to Q and asks for ceil(N x Q / target), N times too "
                f"many, with no equilibrium; use an External metric with an AverageValue target"
            )
        if (
            isinstance(metric, ExternalMetric)
            and metric.name in QUEUE_METRICS
            and metric.target.value_milli is not None
        ):
            out.append(
                f"External metric {metric.name!r} with a Value target asks for ready workers x "
                f"Q / target (N times too many); use an AverageValue target"
            )
    return out


# ------------------------------------------------------------------------------------- I/O


def queue_depths(stats: Callable[[], Sequence[QueueStat]], known: Iterable[str]) -> dict[str, int]:
    """Waiting jobs per queue; queues in ``known`` the broker does not list count 0."""
    depths = dict.fromkeys(known, 0)
    for stat in stats():
        depths[stat.queue] = stat.waiting
    return depths


@dataclass
class _Last:
    process: psutil.Process
    cpu_seconds: float | None = None
    at: float = 0.0


class ProcessSampler:
    """CPU (millicores over the window since the previous sample) and memory (resident set
    size) of a process plus its live children (``process`` isolation runs jobs there)."""

    def __init__(self) -> None:
        self._last: dict[int, _Last] = {}

    @staticmethod
    def _totals(proc: psutil.Process) -> tuple[float, int]:
        times = proc.cpu_times()
        cpu = times.user + times.system + times.children_user + times.children_system
        rss = proc.memory_info().rss
        for child in proc.children(recursive=True):
            try:
                ct = child.cpu_times()
                cpu += ct.user + ct.system
                rss += child.memory_info().rss
            except psutil.Error:
                continue
        return cpu, rss

    def sample(self, pid: int, now: float) -> tuple[PodSample | None, PodSample | None]:
        """(cpu, memory) samples at ``now``; cpu is ``None`` on the first call for a pid."""
        last = self._last.get(pid)
        try:
            if last is None:
                last = self._last[pid] = _Last(psutil.Process(pid))
            cpu_seconds, rss = self._totals(last.process)
        except psutil.Error:
            self._last.pop(pid, None)
            return None, None
        cpu: PodSample | None = None
        window = now - last.at
        if last.cpu_seconds is not None and window > 0:
            used = max(cpu_seconds - last.cpu_seconds, 0.0)
            cpu = PodSample(int(used / window * 1000), now, window)
        memory = PodSample(rss * 1000, now, window if last.cpu_seconds is not None else 0.0)
        last.cpu_seconds, last.at = cpu_seconds, now
        return cpu, memory

    def forget(self, pid: int) -> None:
        self._last.pop(pid, None)
