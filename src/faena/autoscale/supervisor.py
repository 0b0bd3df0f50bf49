"""The local supervisor: worker processes scaled by an HPA manifest, as a cluster would.

:class:`Supervisor` does the I/O around the pure :class:`~faena.autoscale.autoscaler.Autoscaler`:
it starts ``faena worker`` subprocesses (their stdout is passed through, so their JSON lines
reach ours), samples them and the broker every sync period into a
:class:`~faena.autoscale.signals.Signals` snapshot, applies the decisions (new workers, or
SIGTERM to the newest: a graceful drain, so a scale-down never loses a job), replaces workers
that die, logs every decision (``autoscale.decision``) and exports ``faena_desired_workers`` /
``faena_workers``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import IO

from prometheus_client import CollectorRegistry, Gauge

from faena.autoscale.autoscaler import Autoscaler, Decision
from faena.autoscale.signals import (
    ProcessSampler,
    Signals,
    WorkerView,
    queue_depths,
)
from faena.autoscale.state import StateReporter
from faena.brokers.protocol import QueueStat
from faena.core.clock import SYSTEM_CLOCK, Clock
from faena.observability.metrics import DesiredWorkers

log = logging.getLogger("faena.autoscale")

#: seconds a draining worker gets beyond its grace before SIGKILL
STOP_MARGIN_SECONDS = 5.0
#: a worker that dies sooner than this after its start is crash-looping: back off
CRASH_WINDOW_SECONDS = 10.0
MAX_CRASH_BACKOFF_SECONDS = 60.0


# -------------------------------------------------------------------------------- processes


@dataclass(frozen=True)
class WorkerCommand:
    """How to start one worker: ``python -m faena.cli.main worker APP ...``."""

    app_path: str
    queues: str | None = None
    concurrency: int | None = None
    grace: float = 25.0
    broker: str | None = None
    log_format: str = "json"
    log_level: str = "INFO"
    extra_args: tuple[str, ...] = ()

    def argv(self) -> list[str]:
        args = [sys.executable, "-m", "faena.cli.main", "worker", self.app_path]
        if self.queues:
            args += ["--queues", self.queues]
        if self.concurrency is not None:
            args += ["--concurrency", str(self.concurrency)]
        if self.broker:
            args += ["--broker", self.broker]
        # one metrics port per worker would collide: the supervisor exports for all of them
        args += ["--grace", f"{self.grace:g}", "--metrics-port", "0"]
        args += ["--log-format", self.log_format, "--log-level", self.log_level]
        return [*args, *self.extra_args]


@dataclass
class WorkerProcess:
    name: str
    proc: subprocess.Popen[bytes]
    started_at: float
    ready_at: float | None = None
    stop_sent_at: float | None = None
    forwarder: threading.Thread | None = field(default=None, repr=False)

    @property
    def state(self) -> str:
        if self.stop_sent_at is not None:
            return "draining"
        return "starting" if self.ready_at is None else "ready"


class SupervisorMetrics:
    """``faena_desired_workers{pool}`` and ``faena_workers{state}`` in the given registry."""

    STATES = ("starting", "ready", "draining")

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.desired = DesiredWorkers(registry)
        self.workers = Gauge(
            "faena_workers",
            "Worker processes of this supervisor by state",
            ["state"],
            registry=registry,
        )

    def publish(self, pool: str, desired: int, workers: Iterable[WorkerProcess]) -> None:
        self.desired.set(pool, desired)
        states = [w.state for w in workers]
        for state in self.STATES:
            self.workers.labels(state).set(states.count(state))


def worker_env() -> dict[str, str]:
    """The supervisor's environment for its workers, with the current folder importable."""
    env = dict(os.environ)
    path = env.get("PYTHONPATH", "")
    if os.getcwd() not in path.split(os.pathsep):
        env["PYTHONPATH"] = os.pathsep.join(p for p in (os.getcwd(), path) if p)
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


Spawn = Callable[[list[str]], "subprocess.Popen[bytes]"]


def _spawn(argv: list[str]) -> subprocess.Popen[bytes]:
    # own process group: a terminal's Ctrl-C reaches the supervisor only, which then sends
    # each worker exactly one SIGTERM (a second signal would cut the worker's grace short)
    return subprocess.Popen(argv, stdout=subprocess.PIPE, env=worker_env(), process_group=0)


class Supervisor:
    """Keeps ``autoscaler.replicas`` worker processes running; syncs every ``sync_period``."""

    def __init__(
        self,
        autoscaler: Autoscaler,
        command: WorkerCommand,
        *,
        queue_stats: Callable[[], Sequence[QueueStat]],
        known_queues: Iterable[str] = (),
        pool: str = "workers",
        sync_period: float = 15.0,
        clock: Clock = SYSTEM_CLOCK,
        metrics: SupervisorMetrics | None = None,
        spawn: Spawn = _spawn,
        sampler: ProcessSampler | None = None,
        out: IO[bytes] | None = None,
        state: StateReporter | None = None,
    ) -> None:
        self.autoscaler = autoscaler
        self.command = command
        self.queue_stats = queue_stats
        self.known_queues = set(known_queues)
        self.pool = pool
        self.sync_period = sync_period
        self.clock = clock
        self.metrics = metrics
        self.spawn = spawn
        self.out = out if out is not None else sys.stdout.buffer
        self.state = state
        self.workers: list[WorkerProcess] = []
        self.decisions: list[Decision] = []
        self._sampler = sampler or ProcessSampler()
        self._out_lock = threading.Lock()
        self._counter = 0
        self._crashes = 0
        self._next_spawn_at = 0.0

    # ---------------------------------------------------------------------------- workers
    def _forward(self, w: WorkerProcess) -> None:
        assert w.proc.stdout is not None
        for line in iter(w.proc.stdout.readline, b""):
            if w.ready_at is None and b"worker.started" in line:
                w.ready_at = self.clock.now()
                self._crashes = 0
            with self._out_lock, contextlib.suppress(OSError, ValueError):
                # a closed stdout must not stop the reading: a full pipe would block the worker
                self.out.write(line)
                self.out.flush()

    def _start_worker(self, now: float) -> None:
        self._counter += 1
        name = f"{self.pool}-{self._counter}"
        proc = self.spawn(self.command.argv())
        w = WorkerProcess(name, proc, started_at=now)
        if proc.stdout is not None:
            w.forwarder = threading.Thread(target=self._forward, args=(w,), daemon=True)
            w.forwarder.start()
        self.workers.append(w)
        log.info(
            f"started worker {name} (pid {proc.pid})",
            extra={"event": "autoscale.worker_started", "worker": name, "pid": proc.pid},
        )

    def _stop_worker(self, w: WorkerProcess, now: float, why: str) -> None:
        w.stop_sent_at = now
        if w.proc.poll() is None:
            w.proc.send_signal(signal.SIGTERM)
        log.info(
            f"stopping worker {w.name} (pid {w.proc.pid}): {why}",
            extra={
                "event": "autoscale.worker_stopping",
                "worker": w.name,
                "pid": w.proc.pid,
                "at": round(now, 3),
            },
        )

    def _reap(self, now: float) -> None:
        kill_after = self.command.grace + STOP_MARGIN_SECONDS
        for w in list(self.workers):
            code = w.proc.poll()
            if code is None:
                if w.stop_sent_at is not None and now - w.stop_sent_at > kill_after:
                    log.warning(
                        f"worker {w.name} still running {kill_after:g}s after SIGTERM; SIGKILL "
                        f"(its unfinished jobs run again after their lease)",
                        extra={"event": "autoscale.worker_killed", "worker": w.name},
                    )
                    w.proc.kill()
                continue
            self.workers.remove(w)
            self._sampler.forget(w.proc.pid)
            if w.forwarder is not None:
                w.forwarder.join(1)  # its last lines (worker.stopped) reach our stdout first
            fields = {"worker": w.name, "pid": w.proc.pid, "exit_code": code}
            if w.stop_sent_at is not None:
                log.info(
                    f"worker {w.name} stopped (exit {code})",
                    extra={"event": "autoscale.worker_stopped", **fields},
                )
                continue
            if now - w.started_at < CRASH_WINDOW_SECONDS:
                self._crashes += 1
                delay = min(2 ** (self._crashes - 1), MAX_CRASH_BACKOFF_SECONDS)
                self._next_spawn_at = now + delay
            log.warning(
                f"worker {w.name} died unexpectedly (exit {code}); replacing it",
                extra={"event": "autoscale.worker_died", **fields},
            )

    def _converge(self, now: float) -> None:
        """Start or stop workers until ``autoscaler.replicas`` are running (not draining)."""
        active = [w for w in self.workers if w.stop_sent_at is None]
        missing = self.autoscaler.replicas - len(active)
        if missing > 0 and now >= self._next_spawn_at:
            for _ in range(missing):
                self._start_worker(now)
        elif missing < 0:
            # as a ReplicaSet: workers not ready yet first, then the most recently started
            victims = sorted(active, key=lambda w: (w.ready_at is not None, -w.started_at))
            for w in victims[:-missing]:
                self._stop_worker(w, now, f"scale down to {self.autoscaler.replicas}")

    # ---------------------------------------------------------------------------- syncing
    def signals(self, now: float) -> Signals:
        views = []
        for w in self.workers:
            cpu, memory = self._sampler.sample(w.proc.pid, now)
            views.append(
                WorkerView(
                    w.name, w.started_at, w.ready_at, w.stop_sent_at is not None, cpu, memory
                )
            )
        try:
            depths = queue_depths(self.queue_stats, self.known_queues)
        except Exception as exc:  # any broker failure: the queue metric fails this cycle
            return Signals(now, tuple(views), None, f"{type(exc).__name__}: {exc}")
        return Signals(now, tuple(views), depths)

    def sync(self, now: float) -> Decision:
        snapshot = self.signals(now)
        decision = self.autoscaler.decide(snapshot, now)
        self.decisions.append(decision)
        self._log(decision, snapshot)
        self._converge(now)
        if self.state is not None:
            self.state.synced(decision, self.ready_count())
        return decision

    def ready_count(self) -> int:
        """Workers that started and are not draining: the "actual" beside ``desired``."""
        return sum(w.state == "ready" for w in self.workers)

    def _log(self, d: Decision, s: Signals) -> None:
        change = f"{d.current} -> {d.desired}" if d.rescale else f"stay at {d.current}"
        why = f" ({d.limited_by})" if d.limited_by else ""
        log.info(
            f"{change} workers: {d.reason}{why}; metrics want {d.metric_desired}",
            extra={
                "event": "autoscale.decision",
                "pool": self.pool,
                "at": round(d.at, 3),
                "current": d.current,
                "desired": d.desired,
                "rescale": d.rescale,
                "metric_desired": d.metric_desired,
                "reason": d.reason,
                "limited_by": d.limited_by,
                "metrics": [m.as_dict() for m in d.metrics],
                "queues": dict(s.queues) if s.queues is not None else None,
                "workers": {
                    st: sum(w.state == st for w in self.workers) for st in SupervisorMetrics.STATES
                },
            },
        )

    def tick(self, now: float) -> None:
        """Between syncs: notice exits (replace the dead), keep the count, export it."""
        self._reap(now)
        self._converge(now)
        self._publish()
        if self.state is not None:
            self.state.workers_changed(self.ready_count())

    def _publish(self) -> None:
        if self.metrics is not None:
            self.metrics.publish(self.pool, self.autoscaler.replicas, self.workers)

    # ------------------------------------------------------------------------------- run
    def run(self, stop: threading.Event, tick: float = 0.2) -> int:
        """Until ``stop`` is set; then drain every worker and return 0."""
        now = self.clock.now()
        self._converge(now)
        if self.state is not None:
            self.state.starting(self.autoscaler.replicas, self.ready_count())
        next_sync = now + self.sync_period
        try:
            while not stop.is_set():
                now = self.clock.now()
                if now >= next_sync:
                    self._reap(now)
                    self.sync(now)
                    next_sync += self.sync_period
                    if next_sync <= now:  # fell behind (a slow broker): no burst of syncs
                        next_sync = now + self.sync_period
                self.tick(now)
                stop.wait(min(tick, max(next_sync - self.clock.now(), 0.0)))
        finally:
            self.shutdown()
        return 0

    def hurry(self) -> None:
        """A second SIGTERM to every draining worker: it releases its jobs at once (they run
        again elsewhere, no attempt consumed) instead of waiting for them."""
        for w in list(self.workers):
            if w.stop_sent_at is not None and w.proc.poll() is None:
                w.proc.send_signal(signal.SIGTERM)

    def shutdown(self) -> None:
        """SIGTERM every worker once, wait up to grace + margin, SIGKILL what is left."""
        now = self.clock.now()
        for w in self.workers:
            if w.stop_sent_at is None:
                self._stop_worker(w, now, "supervisor stopping")
        deadline = time.monotonic() + self.command.grace + STOP_MARGIN_SECONDS
        while self.workers and time.monotonic() < deadline:
            self._reap(self.clock.now())
            self._publish()
            if self.state is not None:
                self.state.workers_changed(self.ready_count())
            time.sleep(0.05)
        for w in self.workers:
            log.warning(
                f"worker {w.name} did not stop in time; SIGKILL",
                extra={"event": "autoscale.worker_killed", "worker": w.name},
            )
            w.proc.kill()
            w.proc.wait()
            if w.forwarder is not None:
                w.forwarder.join(1)
        self.workers.clear()
        self._publish()
