"""Broker facts read at scrape time: queue depth, oldest-job age, pool slots, dead jobs.

Nothing is cached between scrapes: each ``/metrics`` request asks the broker once
(``queue_stats``, ``pool_stats``, ``count_by_state``), so the numbers are as fresh as the
scrape. A broker error does not fail the scrape: ``faena_broker_up`` turns 0, the error is
logged once per failure streak, and the other metrics of the process are still served.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from faena.brokers.protocol import Broker, PoolStat, QueueStat
from faena.core.states import JobState

_log = logging.getLogger("faena.metrics")

#: a broker, or a callable that returns it (so an app's lazily opened broker is not opened
#: before the first scrape)
BrokerSource = Broker | Callable[[], Broker]


class BrokerCollector(Collector):
    """Exports the broker's view of queues and pools, one series per queue or pool.

    Every process that has a broker may export these (workers, the server, the exporter):
    they describe the shared store, so aggregate them with ``max by (queue)``, never ``sum``.
    A queue seen once (or named in ``queues``) keeps reporting 0 when it empties, so graphs
    and alerts see "empty" rather than "no data".
    """

    def __init__(self, broker: BrokerSource, queues: Iterable[str] = ()) -> None:
        self._source = broker
        self._queues: set[str] = set(queues)
        self._pools: set[str] = set()
        self._lock = threading.Lock()
        self._failing = False

    def _broker(self) -> Broker:
        source = self._source
        return source if isinstance(source, Broker) else source()

    def describe(self) -> Iterable[GaugeMetricFamily]:
        return []  # unchecked collector: the families depend on what the broker holds

    def collect(self) -> Iterator[GaugeMetricFamily]:
        started = time.perf_counter()
        up = GaugeMetricFamily(
            "faena_broker_up", "1 if the last scrape could read the broker, else 0"
        )
        try:
            broker = self._broker()
            queues = broker.queue_stats()
            pools = broker.pool_stats()
            counts = broker.count_by_state()
        except Exception as exc:  # a scrape must not die with the broker
            self._report_failure(exc)
            up.add_metric([], 0)
            yield up
            return
        if self._failing:
            _log.info("broker readable again", extra={"event": "metrics.broker_recovered"})
            self._failing = False
        up.add_metric([], 1)
        yield up
        yield from self._queue_families(queues, counts)
        yield from self._pool_families(pools)
        took = GaugeMetricFamily(
            "faena_broker_scrape_duration_seconds",
            "Time the last scrape spent reading the broker",
        )
        took.add_metric([], time.perf_counter() - started)
        yield took

    def _report_failure(self, exc: Exception) -> None:
        if not self._failing:
            _log.error(
                "metrics scrape could not read the broker; faena_broker_up is 0 until it can",
                extra={
                    "event": "metrics.broker_error",
                    "error_type": type(exc).__name__,
                    "error_message": str(exc),
                },
            )
        self._failing = True

    def _queue_families(
        self, stats: list[QueueStat], counts: dict[tuple[str, JobState], int]
    ) -> Iterator[GaugeMetricFamily]:
        by_queue = {s.queue: s for s in stats}
        dead: dict[str, int] = {}
        for (queue, state), n in counts.items():
            if state is JobState.DEAD:
                dead[queue] = dead.get(queue, 0) + n
        with self._lock:
            self._queues.update(by_queue, dead)
            queues = sorted(self._queues)
        length = GaugeMetricFamily(
            "celery_queue_length",
            "Jobs waiting in the queue, runnable now (read from the broker at scrape time)",
            labels=["queue"],
        )
        oldest = GaugeMetricFamily(
            "faena_queue_oldest_job_age_seconds",
            "How long the longest-waiting runnable job of the queue has waited; 0 if none",
            labels=["queue"],
        )
        scheduled = GaugeMetricFamily(
            "faena_jobs_scheduled",
            "Jobs waiting for a future time (delayed, or in retry backoff)",
            labels=["queue"],
        )
        running = GaugeMetricFamily(
            "faena_jobs_running", "Jobs running now, on any worker", labels=["queue"]
        )
        dead_family = GaugeMetricFamily(
            "faena_jobs_dead",
            "Dead jobs kept for inspection (no attempts left); retry or prune them",
            labels=["queue"],
        )
        for queue in queues:
            s = by_queue.get(queue)
            length.add_metric([queue], s.waiting if s else 0)
            oldest.add_metric([queue], s.oldest_age if s else 0.0)
            scheduled.add_metric([queue], s.scheduled if s else 0)
            running.add_metric([queue], s.running if s else 0)
            dead_family.add_metric([queue], dead.get(queue, 0))
        yield from (length, oldest, scheduled, running, dead_family)

    def _pool_families(self, stats: list[PoolStat]) -> Iterator[GaugeMetricFamily]:
        size = GaugeMetricFamily("faena_pool_slots", "Slots of the pool", labels=["pool"])
        used = GaugeMetricFamily(
            "faena_pool_slots_used", "Slots of the pool held by running jobs", labels=["pool"]
        )
        for s in sorted(stats, key=lambda s: s.pool):
            size.add_metric([s.pool], s.size)
            used.add_metric([s.pool], s.used)
        yield size
        yield used
