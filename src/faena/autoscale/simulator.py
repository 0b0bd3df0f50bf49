"""Discrete-event simulation of a worker Deployment driven by the HPA algorithm.

A virtual clock moves from event to event (arrivals, completions, pods becoming ready or
gone, metric scrapes, HPA syncs): nothing sleeps, a run of hours takes a moment, and the same
load spec and seed always give the same result. The HPA decisions come from
:func:`faena.autoscale.hpa.reconcile`, the same code the local supervisor runs.

Model: a FIFO queue; each ready pod runs up to ``concurrency`` tasks; new pods are Pending
for ``startup_delay`` seconds; a removed pod stops claiming, finishes its tasks within
``shutdown_grace`` and releases the rest back to the queue. Every ``scrape_interval`` the
metrics are scraped; the HPA sees the latest scrape at least ``lag`` seconds old.
"""

from __future__ import annotations

import bisect
import heapq
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import IntEnum

from faena.autoscale.hpa import ControllerConfig, HPAState, MetricReading, Observation, reconcile
from faena.autoscale.hpa_calc import PodInfo, PodPhase, PodSample
from faena.autoscale.sim_load import LoadSpec
from faena.autoscale.spec import (
    ExternalMetric,
    HPASpec,
    MetricSpec,
    ObjectMetric,
    PodsMetric,
    ResourceMetric,
)


class _Ev(IntEnum):  # same-time order
    COMPLETE = 0
    POD_GONE = 1
    POD_READY = 2
    ARRIVAL = 3
    SCRAPE = 4
    SYNC = 5
    SAMPLE = 6


@dataclass(frozen=True)
class Scenario:
    """One manifest to simulate; ``name`` labels it in the report."""

    name: str
    spec: HPASpec


@dataclass(frozen=True)
class TimelineRow:
    t: float
    desired_replicas: int
    pods: int
    ready_pods: int
    queue_depth: int
    running: int
    oldest_wait_s: float


@dataclass(frozen=True)
class ScaleRecord:
    t: float
    old: int
    new: int
    reason: str


@dataclass(frozen=True)
class SimResult:
    scenario: str
    duration: float
    timeline: tuple[TimelineRow, ...]
    scale_events: tuple[ScaleRecord, ...]
    waits: tuple[float, ...]  # per task: start - arrival; unstarted tasks: end - arrival
    started: int
    completed: int
    released: int
    max_backlog: int
    replica_seconds: float
    burst_drain_s: tuple[float | None, ...]


@dataclass
class _Pod:
    name: str
    created: float
    ready_at: float
    ready: bool = False
    terminating: bool = False
    running: dict[int, float] = field(default_factory=dict)  # task -> completion time
    gone_event: float | None = None


@dataclass(frozen=True)
class _Snapshot:
    t: float
    queue: int
    per_pod: tuple[tuple[str, int, int, int], ...]  # name, cpu milli, memory milli, running


class _Run:
    def __init__(
        self,
        load: LoadSpec,
        scenario: Scenario,
        duration: float,
        config: ControllerConfig,
        sample_interval: float,
    ) -> None:
        self.sample_interval = sample_interval
        self.load = load
        self.w = load.workers
        self.m = load.metrics
        self.spec = scenario.spec
        self.name = scenario.name
        self.duration = duration
        self.config = config
        self.tasks = [t for t in load.tasks() if t[0] <= duration]
        self.heap: list[tuple[float, int, int, int]] = []
        self.seq = 0
        self.now = 0.0
        self.queue: deque[int] = deque()
        self.pods: dict[str, _Pod] = {}
        self.pod_counter = 0
        self.desired = self.w.initial_replicas
        self.state = HPAState()
        self.snapshots: list[_Snapshot] = []
        self.start_times: dict[int, float] = {}
        self.completed = 0
        self.released = 0
        self.max_backlog = 0
        self.replica_seconds = 0.0
        self.last_t = 0.0
        self.arrived = 0
        # (time, arrivals so far) whenever the queue went from non-empty to empty
        self.empty_times: list[tuple[float, int]] = []
        self.task_pod: dict[int, str] = {}
        self.timeline: list[TimelineRow] = []
        self.scale_events: list[ScaleRecord] = []

    # ------------------------------------------------------------------ bookkeeping

    def push(self, t: float, kind: _Ev, payload: int = 0) -> None:
        self.seq += 1
        heapq.heappush(self.heap, (t, int(kind), self.seq, payload))

    def advance(self, t: float) -> None:
        self.replica_seconds += len(self.pods) * (t - self.last_t)
        self.last_t = t
        self.now = t

    def new_pod(self, ready_immediately: bool) -> None:
        self.pod_counter += 1
        name = f"{self.name}-worker-{self.pod_counter}"
        if ready_immediately:
            pod = _Pod(name, created=-3600.0, ready_at=-3600.0, ready=True)
        else:
            pod = _Pod(name, created=self.now, ready_at=self.now + self.w.startup_delay)
            self.push(pod.ready_at, _Ev.POD_READY, self.pod_counter)
        self.pods[name] = pod

    def pod_by_number(self, number: int) -> _Pod | None:
        return self.pods.get(f"{self.name}-worker-{number}")

    # -------------------------------------------------------------------- dispatch

    def dispatch(self) -> None:
        free = [p for p in self.pods.values() if p.ready and not p.terminating]
        while self.queue and free:
            pod = min(free, key=lambda p: len(p.running))
            if len(pod.running) >= self.w.concurrency:
                break
            task = self.queue.popleft()
            self.start_times.setdefault(task, self.now)
            end = self.now + self.tasks[task][1]
            pod.running[task] = end
            self.task_pod[task] = pod.name
            self.push(end, _Ev.COMPLETE, task)

    def complete(self, task: int) -> None:
        pod = self.pods.get(self.task_pod.get(task, ""))
        if pod is None or pod.running.get(task) != self.now:
            return  # the task was released and restarted elsewhere
        del pod.running[task]
        self.completed += 1
        if pod.terminating and not pod.running:
            self.remove(pod)

    def remove(self, pod: _Pod) -> None:
        for task in sorted(pod.running, reverse=True):  # release unfinished work, in order
            self.queue.appendleft(task)
            self.released += 1
        pod.running.clear()
        del self.pods[pod.name]

    # ------------------------------------------------------------------------ scale

    def apply_replicas(self, desired: int) -> None:
        self.desired = desired
        active = [p for p in self.pods.values() if not p.terminating]
        for _ in range(desired - len(active)):
            self.new_pod(ready_immediately=False)
        excess = len(active) - desired
        if excess <= 0:
            return
        # ReplicaSet order: not-ready pods first, then the most recently ready (newest first).
        victims = sorted(active, key=lambda p: (p.ready, -p.ready_at, -p.created))
        for pod in victims[:excess]:
            pod.terminating = True
            if not pod.running:
                self.remove(pod)
            else:
                deadline = self.now + self.w.shutdown_grace
                pod.gone_event = deadline
                self.push(deadline, _Ev.POD_GONE, int(pod.name.rsplit("-", 1)[1]))

    # ---------------------------------------------------------------------- metrics

    def scrape(self) -> None:
        per_pod = tuple(
            (
                p.name,
                self.w.cpu_idle_milli + len(p.running) * self.w.cpu_per_task_milli,
                self.w.memory_base_milli + len(p.running) * self.w.memory_per_task_milli,
                len(p.running),
            )
            for p in self.pods.values()
            if p.ready
        )
        self.snapshots.append(_Snapshot(self.now, len(self.queue), per_pod))

    def visible_snapshot(self) -> _Snapshot | None:
        cutoff = self.now - self.m.lag
        for snap in reversed(self.snapshots):
            if snap.t <= cutoff:
                return snap
        return None

    def reading(self, metric: MetricSpec, snap: _Snapshot | None) -> MetricReading:
        if snap is None:
            return MetricReading(error="no scrape is old enough yet")
        window = self.m.scrape_interval

        def samples(values: dict[str, int]) -> dict[str, PodSample]:
            return {n: PodSample(v, snap.t, window) for n, v in values.items()}

        queue_milli = snap.queue * 1000
        if isinstance(metric, ResourceMetric) and metric.name in ("cpu", "memory"):
            col = 1 if metric.name == "cpu" else 2
            return MetricReading(
                pod_samples=samples({row[0]: int(row[col]) for row in snap.per_pod})
            )
        if isinstance(metric, PodsMetric) and metric.name in self.m.queue_metrics:
            if self.m.pods_report == "whole_queue":
                return MetricReading(pod_samples=samples({r[0]: queue_milli for r in snap.per_pod}))
            return MetricReading(pod_samples=samples({r[0]: r[3] * 1000 for r in snap.per_pod}))
        if isinstance(metric, ExternalMetric) and metric.name in self.m.queue_metrics:
            copies = len(snap.per_pod) if self.m.external_series == "per_pod" else 1
            return MetricReading(values_milli=(queue_milli,) * copies)
        if isinstance(metric, ObjectMetric) and metric.name in self.m.queue_metrics:
            return MetricReading(value_milli=queue_milli)
        name = getattr(metric, "name", "")
        return MetricReading(
            error=f"the simulator has no signal for {metric.kind} metric {name!r}; "
            f"queue metrics are {list(self.m.queue_metrics)}, resources cpu and memory"
        )

    def pod_infos(self) -> tuple[PodInfo, ...]:
        requests = (("cpu", self.w.cpu_request_milli), ("memory", self.w.memory_request_milli))
        return tuple(
            PodInfo(
                name=p.name,
                phase=PodPhase.RUNNING if p.ready else PodPhase.PENDING,
                ready=p.ready,
                deleting=p.terminating,
                start_time=p.created,
                ready_transition_time=p.ready_at if p.ready else p.created,
                requests_milli=requests,
            )
            for p in self.pods.values()
        )

    def sync(self) -> None:
        snap = self.visible_snapshot()
        obs = Observation(
            spec_replicas=self.desired,
            status_replicas=sum(1 for p in self.pods.values() if not p.terminating),
            pods=self.pod_infos(),
            readings=tuple(self.reading(m, snap) for m in self.spec.metrics),
        )
        result = reconcile(self.spec, obs, self.state, self.now, self.config)
        self.state = result.state
        if result.rescale:
            self.scale_events.append(
                ScaleRecord(self.now, self.desired, result.desired_replicas, result.reason)
            )
            self.apply_replicas(result.desired_replicas)

    def sample(self) -> None:
        oldest = self.now - self.tasks[self.queue[0]][0] if self.queue else 0.0
        self.timeline.append(
            TimelineRow(
                t=self.now,
                desired_replicas=self.desired,
                pods=sum(1 for p in self.pods.values() if not p.terminating),
                ready_pods=sum(1 for p in self.pods.values() if p.ready and not p.terminating),
                queue_depth=len(self.queue),
                running=sum(len(p.running) for p in self.pods.values()),
                oldest_wait_s=oldest,
            )
        )

    # ------------------------------------------------------------------------- loop

    def handle(self, kind: _Ev, payload: int) -> None:
        if kind == _Ev.ARRIVAL:
            self.queue.append(payload)
            self.arrived += 1
            self.max_backlog = max(self.max_backlog, len(self.queue))
        elif kind == _Ev.COMPLETE:
            self.complete(payload)
        elif kind == _Ev.POD_READY:
            pod = self.pod_by_number(payload)
            if pod is not None and not pod.terminating:
                pod.ready = True
        elif kind == _Ev.POD_GONE:
            pod = self.pod_by_number(payload)
            if pod is not None and pod.gone_event == self.now:
                self.remove(pod)
        elif kind == _Ev.SCRAPE:
            self.scrape()
            self.push(self.now + self.m.scrape_interval, _Ev.SCRAPE)
        elif kind == _Ev.SYNC:
            self.sync()
            self.push(self.now + self.m.sync_period, _Ev.SYNC)
        elif kind == _Ev.SAMPLE:
            self.sample()
            self.push(self.now + self.sample_interval, _Ev.SAMPLE)
        if kind not in (_Ev.SCRAPE, _Ev.SAMPLE):
            had_backlog = bool(self.queue) or kind == _Ev.ARRIVAL
            self.dispatch()
            self.max_backlog = max(self.max_backlog, len(self.queue))
            if had_backlog and not self.queue:
                self.empty_times.append((self.now, self.arrived))

    def run(self) -> SimResult:
        for _ in range(self.w.initial_replicas):
            self.new_pod(ready_immediately=True)
        for i, (arrival, _service) in enumerate(self.tasks):
            self.push(arrival, _Ev.ARRIVAL, i)
        self.push(0.0, _Ev.SCRAPE)
        self.push(self.m.sync_period, _Ev.SYNC)
        self.push(0.0, _Ev.SAMPLE)
        while self.heap and self.heap[0][0] <= self.duration:
            t, kind, _seq, payload = heapq.heappop(self.heap)
            self.advance(t)
            self.handle(_Ev(kind), payload)
        self.advance(self.duration)
        waits = tuple(
            self.start_times.get(i, self.duration) - arrival
            for i, (arrival, _s) in enumerate(self.tasks)
        )
        return SimResult(
            scenario=self.name,
            duration=self.duration,
            timeline=tuple(self.timeline),
            scale_events=tuple(self.scale_events),
            waits=waits,
            started=len(self.start_times),
            completed=self.completed,
            released=self.released,
            max_backlog=self.max_backlog,
            replica_seconds=self.replica_seconds,
            burst_drain_s=tuple(self._drain(b.at + b.over) for b in self.load.bursts),
        )

    def _drain(self, burst_end: float) -> float | None:
        """Seconds from the burst's last arrival until the queue is empty again."""
        enqueued = bisect.bisect_right([t for t, _ in self.tasks], burst_end)
        for t, arrived in self.empty_times:
            if arrived >= enqueued and t >= burst_end:
                return t - burst_end
        return None


def simulate(
    load: LoadSpec,
    scenarios: Sequence[Scenario],
    duration: float,
    *,
    config: ControllerConfig | None = None,
    sample_interval: float = 5.0,
) -> list[SimResult]:
    """Run every scenario on the same tasks; one result per scenario, in order."""
    config = config or ControllerConfig(sync_period_s=load.metrics.sync_period)
    return [_Run(load, scenario, duration, config, sample_interval).run() for scenario in scenarios]
