"""The phases of ``faena bench``: enqueue one by one and in batches, drain with one real
``faena worker`` process, then enqueue-to-start latency with that worker idle.

Every figure is read where it happens: enqueue rates on this process's clock, the drain from
the store's counts (polled), the latency from each job's own ``enqueued_at`` and
``started_at`` as the store recorded them (the producer's and the worker's clocks: on two
machines, their skew is in the figure).
"""

from __future__ import annotations

import secrets
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import psutil

from faena.app import App
from faena.benchmark.tasks import noop
from faena.core.logsink import NO_LOGS
from faena.core.states import JobState
from faena.errors import FaenaError

#: the app the worker process runs (faena/benchmark/tasks.py)
BENCH_APP = "faena.benchmark.tasks:app"
#: jobs a batch enqueue writes in one broker call
BATCH = 1000
#: how often the drain reads the store's counts; the drain's rate is measured between the
#: first poll that sees a finished job and the one that sees the last, so its error is at
#: most two polls over the drain's length. Every backend answers queue_stats from counters
#: (and the few jobs due later), so a poll costs the drain nothing that shows; at 0.1 s a
#: worker drained the CI test's 600 jobs between two polls
POLL_SECONDS = 0.01
#: how long the worker may take to start and finish its first job
START_TIMEOUT = 60.0


class BenchError(FaenaError):
    """The benchmark could not run: the message says what failed and what to check."""


@dataclass(frozen=True)
class BenchReport:
    broker: str
    queue: str
    jobs: int
    concurrency: int
    enqueue_one_per_s: float
    enqueue_batch_per_s: float
    drain_per_s: float
    worker_cpu_us_per_job: float
    latency_samples: int
    latency_p50_ms: float
    latency_p95_ms: float
    latency_p99_ms: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def percentile(values: list[float], q: float) -> float:
    """The ``q`` quantile (0 to 1) by linear interpolation between closest ranks."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    position = q * (len(ordered) - 1)
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


class _Worker:
    """One ``faena worker`` process on the benchmark's queue; its output goes to a temporary
    file, shown when it dies."""

    def __init__(self, broker_url: str, queue: str, concurrency: int) -> None:
        # closed by stop(), which every caller reaches (run_bench: finally)
        self._log = tempfile.NamedTemporaryFile(prefix="faena-bench-worker-", suffix=".log")  # noqa: SIM115
        argv = [sys.executable, "-m", "faena.cli.main", "worker", BENCH_APP, "--broker",
                broker_url, "--queues", queue, "--concurrency", str(concurrency),
                "--log-level", "WARNING", "--log-format", "json", "--no-scheduler"]  # fmt: skip
        self.proc = subprocess.Popen(argv, stdout=self._log, stderr=subprocess.STDOUT)
        self.ps = psutil.Process(self.proc.pid)

    def cpu_seconds(self) -> float:
        times = self.ps.cpu_times()
        return float(times.user + times.system)

    def check_alive(self) -> None:
        if self.proc.poll() is not None:
            self._log.seek(0)
            tail = self._log.read().decode("utf-8", "replace").strip().splitlines()[-10:]
            raise BenchError(
                f"the benchmark's worker exited with code {self.proc.returncode}: "
                + ("\n".join(tail) or "(no output)")
            )

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()


def _remaining(app: App, queue: str) -> int:
    """Jobs of ``queue`` not ended yet (waiting, scheduled or running): the queue's stats,
    which every backend reads off an index, so polling them costs the drain nothing."""
    for stat in app.broker.queue_stats():
        if stat.queue == queue:
            return stat.waiting + stat.scheduled + stat.running
    return 0


def _ended_otherwise(app: App, queue: str) -> int:
    """The benchmark's jobs that did not succeed (read once, at the end: a full count)."""
    counts = app.broker.count_by_state()
    return sum(n for (q, s), n in counts.items() if q == queue and s != JobState.SUCCEEDED)


def run_bench(
    broker_url: str,
    *,
    jobs: int,
    concurrency: int,
    latency_samples: int,
    progress: Callable[[str, int, int], None] = lambda phase, done, total: None,
) -> BenchReport:
    """Run the three phases against ``broker_url``; ``progress(phase, done, total)`` is
    called as they go. The benchmark's jobs stay in the store as succeeded jobs of their own
    queue (pruned by the retention like any others)."""
    queue = f"faena-bench-{secrets.token_hex(4)}"
    app = App(broker=broker_url, log_sink=NO_LOGS)
    try:
        app.broker.setup()
        one_by_one = min(jobs, BATCH)
        started = time.perf_counter()
        for i in range(one_by_one):
            app.enqueue(noop.name, queue=queue)
            if i % 100 == 0:
                progress("enqueue one by one", i, one_by_one)
        one_rate = one_by_one / (time.perf_counter() - started)
        progress("enqueue one by one", one_by_one, one_by_one)
        started = time.perf_counter()
        for first in range(0, jobs, BATCH):
            size = min(BATCH, jobs - first)
            app.enqueue_many(noop.name, [((), {})] * size, queue=queue)
            progress("enqueue in batches", first + size, jobs)
        batch_rate = jobs / (time.perf_counter() - started)
        total = one_by_one + jobs
        worker = _Worker(broker_url, queue, concurrency)
        try:
            drain_rate, cpu_per_job = _drain(app, queue, total, worker, progress)
            latencies = _latencies(app, queue, latency_samples, worker, progress)
        finally:
            worker.stop()
    finally:
        app.close()
    return BenchReport(
        broker=app.store,
        queue=queue,
        jobs=total,
        concurrency=concurrency,
        enqueue_one_per_s=one_rate,
        enqueue_batch_per_s=batch_rate,
        drain_per_s=drain_rate,
        worker_cpu_us_per_job=cpu_per_job,
        latency_samples=len(latencies),
        latency_p50_ms=percentile(latencies, 0.50) * 1000,
        latency_p95_ms=percentile(latencies, 0.95) * 1000,
        latency_p99_ms=percentile(latencies, 0.99) * 1000,
    )


def _drain(
    app: App,
    queue: str,
    total: int,
    worker: _Worker,
    progress: Callable[[str, int, int], None],
) -> tuple[float, float]:
    deadline = time.monotonic() + START_TIMEOUT
    first: tuple[float, int, float] | None = None
    while True:
        worker.check_alive()
        done = total - _remaining(app, queue)
        now = time.perf_counter()
        progress("drain", done, total)
        if first is None and done:
            first = (now, done, worker.cpu_seconds())
        if first is None and time.monotonic() > deadline:
            raise BenchError(
                f"the benchmark's worker finished no job within {START_TIMEOUT:g} s on "
                f"{app.store}; check that the broker answers and that this machine can "
                f"run 'faena worker'"
            )
        if done >= total:
            break
        time.sleep(POLL_SECONDS)
    failed = _ended_otherwise(app, queue)
    if failed:
        raise BenchError(
            f"{failed} of the benchmark's no-op jobs did not succeed on queue {queue!r}: "
            f"see them with 'faena jobs --queue {queue}'"
        )
    assert first is not None
    t0, n0, cpu0 = first
    elapsed, measured = now - t0, done - n0
    cpu = worker.cpu_seconds() - cpu0
    if measured <= 0 or elapsed <= 0:  # drained between two polls: too few jobs to measure
        raise BenchError(
            f"the worker drained {total} jobs between two polls ({POLL_SECONDS:g} s): too "
            f"few to measure; run with more --jobs"
        )
    return measured / elapsed, cpu / measured * 1e6


def _latencies(
    app: App,
    queue: str,
    samples: int,
    worker: _Worker,
    progress: Callable[[str, int, int], None],
) -> list[float]:
    """Enqueue one job at a time to the idle worker and read how long it waited."""
    found: list[float] = []
    for i in range(samples):
        worker.check_alive()
        handle = app.enqueue(noop.name, queue=queue)
        handle.wait(timeout=30)
        job = handle.refresh()
        if job.started_at is not None:
            found.append(max(0.0, job.started_at - job.enqueued_at))
        progress("latency", i + 1, samples)
        time.sleep(0.005)  # the worker goes back to waiting, as between real arrivals
    return found


def table(report: BenchReport) -> str:
    """The summary as aligned text lines."""
    rows = [
        ("broker", report.broker),
        ("jobs", f"{report.jobs:,} no-op jobs on queue {report.queue}"),
        ("worker", f"1 process, concurrency {report.concurrency}"),
        ("enqueue one by one", f"{report.enqueue_one_per_s:,.0f} jobs/s"),
        (f"enqueue in batches of {BATCH}", f"{report.enqueue_batch_per_s:,.0f} jobs/s"),
        ("drain", f"{report.drain_per_s:,.0f} jobs/s"),
        ("worker CPU", f"{report.worker_cpu_us_per_job:,.0f} µs/job"),
        (
            f"enqueue to start ({report.latency_samples} jobs)",
            f"p50 {report.latency_p50_ms:.1f} ms, p95 {report.latency_p95_ms:.1f} ms, "
            f"p99 {report.latency_p99_ms:.1f} ms",
        ),
    ]
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"{name:<{width}}  {value}" for name, value in rows)
