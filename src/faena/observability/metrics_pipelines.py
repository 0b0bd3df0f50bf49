"""Pipeline facts read from the broker at scrape time: runs by pipeline and state, run
duration and step wait, over each scrape's window of recent runs.

The window is the newest :data:`RECENT_RUNS` runs the store keeps (all pipelines), read with
one ``list_runs`` call per scrape: the numbers describe the shared store, as the queue
gauges do (aggregate with ``max``, never ``sum``, across processes exporting them). Duration
and wait are gauge histograms of that window (``histogram_quantile`` works on their
buckets without ``rate``). Labels are pipeline and step names only, never run ids.

A run's end is logged once as ``pipeline.run_finished`` (with ``pipeline``, ``run_id``,
``status``, ``duration_s``) however many processes scrape: a scrape that sees a run ended
asks the store to note that end (``note_run_ended``, a compare-and-set on the run), and only
the process that noted it logs it; a restarted process does not repeat an end another
noted. An end older than :data:`REPORT_WINDOW_SECONDS` when first seen (the runs a store
kept from before an upgrade) is noted without a line. A run retried and ended again is
logged again.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence

from prometheus_client.core import GaugeHistogramMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from faena.brokers.protocol import Broker
from faena.core.clock import SYSTEM_CLOCK, Clock
from faena.core.dependencies import RunState
from faena.core.runs import RunRecord

_log = logging.getLogger("faena.pipelines")

#: the runs each scrape reads
RECENT_RUNS = 500
#: an end first seen later than this after it happened is noted without a log line
REPORT_WINDOW_SECONDS = 3600.0
#: seconds: a run of an ETL takes minutes to hours
DURATION_BUCKETS = (1.0, 10.0, 60.0, 300.0, 900.0, 1800.0, 3600.0, 7200.0, 14400.0, 43200.0)
#: seconds from a step's release (or enqueue) to its start
WAIT_BUCKETS = (0.01, 0.1, 0.5, 1.0, 5.0, 30.0, 60.0, 300.0, 1800.0)

BrokerSource = Broker | Callable[[], Broker]


def _buckets(values: Sequence[float], bounds: Sequence[float]) -> list[tuple[str, float]]:
    out = [(repr(b), float(sum(1 for v in values if v <= b))) for b in bounds]
    out.append(("+Inf", float(len(values))))
    return out


def step_waits(run: RunRecord) -> Iterator[tuple[str, float]]:
    """(step, seconds from its release to its start) of each started step."""
    for step in run.steps:
        if step.started_at is not None and step.run_at is not None:
            yield step.name, max(step.started_at - step.run_at, 0.0)


class PipelineCollector(Collector):
    def __init__(self, broker: BrokerSource, clock: Clock | None = None) -> None:
        self._source = broker
        self._clock = clock or SYSTEM_CLOCK
        self._lock = threading.Lock()
        self._seen_ended: dict[str, float] = {}  # run id: the end this process has asked about
        self._pipelines: set[str] = set()

    def _broker(self) -> Broker:
        source = self._source
        return source if isinstance(source, Broker) else source()

    def describe(self) -> Iterable[GaugeMetricFamily]:
        return []

    def collect(self) -> Iterator[GaugeMetricFamily | GaugeHistogramMetricFamily]:
        try:
            broker = self._broker()
            runs = broker.list_runs(limit=RECENT_RUNS)
        except Exception:  # the broker collector reports the broker's health
            return
        with self._lock:
            # a broker error: the ends not noted yet are asked about at the next scrape
            with contextlib.suppress(Exception):
                self._log_ended(broker, runs)
            self._pipelines |= {r.pipeline for r in runs}
            pipelines = sorted(self._pipelines)
        by_state = GaugeMetricFamily(
            "faena_pipeline_runs",
            f"Runs by pipeline and state, among the newest {RECENT_RUNS} runs kept",
            labels=["pipeline", "state"],
        )
        duration = GaugeHistogramMetricFamily(
            "faena_pipeline_run_duration_seconds",
            f"Duration of the ended runs among the newest {RECENT_RUNS}, by pipeline",
            labels=["pipeline"],
        )
        wait = GaugeHistogramMetricFamily(
            "faena_pipeline_step_wait_seconds",
            "Seconds from a step's release (or enqueue) to its start, by pipeline and step, "
            f"among the newest {RECENT_RUNS} runs",
            labels=["pipeline", "step"],
        )
        for name in pipelines:
            mine = [r for r in runs if r.pipeline == name]
            for state in RunState:
                by_state.add_metric([name, state.value], sum(r.state is state for r in mine))
            took = [
                r.finished_at - r.created_at
                for r in mine
                if r.finished_at is not None and r.state is not RunState.RUNNING
            ]
            duration.add_metric([name], _buckets(took, DURATION_BUCKETS), sum(took))
            waits: dict[str, list[float]] = {}
            for run in mine:
                for step, seconds in step_waits(run):
                    waits.setdefault(step, []).append(seconds)
            for step, values in sorted(waits.items()):
                wait.add_metric([name, step], _buckets(values, WAIT_BUCKETS), sum(values))
        yield by_state
        yield duration
        yield wait

    def _log_ended(self, broker: Broker, runs: list[RunRecord]) -> None:
        now = self._clock.now()
        ended = {r.id: (r, r.finished_at) for r in runs if r.state is not RunState.RUNNING}
        for run_id, (run, at) in ended.items():
            if at is None or self._seen_ended.get(run_id) == at:
                continue
            noted = broker.note_run_ended(run_id, at)  # raises: asked again next scrape
            self._seen_ended[run_id] = at
            if not noted or now - at > REPORT_WINDOW_SECONDS:
                continue  # another process logged it, or it ended long before anyone looked
            _log.info(
                f"pipeline {run.pipeline} run {run.id} {run.state.value}",
                extra={
                    "event": "pipeline.run_finished",
                    "pipeline": run.pipeline,
                    "run_id": run.id,
                    "status": run.state.value,
                    "duration_s": round(at - run.created_at, 3),
                },
            )
        if len(self._seen_ended) > 4 * RECENT_RUNS:  # keep what the window can show
            self._seen_ended = {k: v for k, v in self._seen_ended.items() if k in ended}
