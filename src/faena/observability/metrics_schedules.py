"""Schedule metrics: what this process fired (``faena_schedule_fires_total``,
``faena_schedule_lag_seconds``, from the app's ``schedule.fired`` events) and what the store
keeps of every declared schedule, read at scrape time, the same in every process
(``faena_schedule_last_fire_timestamp_seconds``, ``faena_schedule_last_tick_timestamp_seconds``,
``faena_schedule_interval_seconds``: the longest time between two of its ticks, which the
alert ``FaenaScheduleStoppedFiring`` compares against). The only label is the schedule's
name, of declared schedules only."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator, Mapping

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from faena.brokers.protocol import OperatorStore
from faena.core import events as ev
from faena.schedules.spec import Schedule

#: seconds from a tick to its enqueue: a round is about a second; an outage is longer
LAG_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0)

_log = logging.getLogger("faena.observability")


class ScheduleMetrics:
    """Counts this process's fires (the scheduler that won each tick's write)."""

    def __init__(self, registry: CollectorRegistry, names: Iterable[str]) -> None:
        self._names = frozenset(names)
        self.fires = Counter(
            "faena_schedule_fires_total",
            "Ticks of a schedule this process enqueued (each tick is fired by one process).",
            ["schedule"],
            registry=registry,
        )
        self.lag = Histogram(
            "faena_schedule_lag_seconds",
            "Seconds from a schedule's tick to the enqueue of its jobs.",
            ["schedule"],
            buckets=LAG_BUCKETS,
            registry=registry,
        )

    def attach(self, bus: ev.EventBus) -> ScheduleMetrics:
        bus.subscribe(ev.SCHEDULE_FIRED, self.handle)
        return self

    def handle(self, event: ev.Event) -> None:
        name = event.fields.get("schedule")
        if name not in self._names:
            return  # only declared names: a bounded label
        self.fires.labels(name).inc()
        self.lag.labels(name).observe(max(0.0, float(event.fields.get("lag_seconds", 0.0))))


class ScheduleCollector(Collector):
    """The store's record of each declared schedule, read at scrape time."""

    def __init__(
        self, schedules: Mapping[str, Schedule], store: Callable[[], OperatorStore]
    ) -> None:
        self._schedules = dict(schedules)
        self._store = store
        self._gaps: dict[str, float] | None = None  # at the first scrape: not at start

    def _intervals(self) -> dict[str, float]:
        if self._gaps is None:
            now = time.time()
            self._gaps = {n: s.trigger.longest_gap(now) for n, s in self._schedules.items()}
        return self._gaps

    def describe(self) -> Iterable[GaugeMetricFamily]:
        return list(self._families())

    def _families(self) -> tuple[GaugeMetricFamily, GaugeMetricFamily, GaugeMetricFamily]:
        return (
            GaugeMetricFamily(
                "faena_schedule_last_fire_timestamp_seconds",
                "When the store recorded the schedule's last tick (POSIX seconds).",
                labels=["schedule"],
            ),
            GaugeMetricFamily(
                "faena_schedule_last_tick_timestamp_seconds",
                "The schedule's last tick the store recorded (POSIX seconds).",
                labels=["schedule"],
            ),
            GaugeMetricFamily(
                "faena_schedule_interval_seconds",
                "The longest time between two ticks of the schedule (its expected interval).",
                labels=["schedule"],
            ),
        )

    def collect(self) -> Iterator[GaugeMetricFamily]:
        fired, tick, interval = self._families()
        for name, gap in sorted(self._intervals().items()):
            interval.add_metric([name], gap)
        try:
            states = self._store().schedule_states()
        except Exception as exc:  # a scrape never fails for a broker that does not answer
            _log.error(
                "schedule states could not be read for /metrics",
                extra={"event": "metrics.broker_error", "error_type": type(exc).__name__},
            )
            states = []
        for state in states:
            if state.name in self._schedules:
                fired.add_metric([state.name], state.fired_at)
                tick.add_metric([state.name], state.last_tick)
        yield from (fired, tick, interval)


def register_schedule_metrics(
    registry: CollectorRegistry,
    schedules: Mapping[str, Schedule],
    bus: ev.EventBus,
    store: Callable[[], OperatorStore],
) -> None:
    """Both halves, for an app that declares schedules (nothing otherwise)."""
    if not schedules:
        return
    ScheduleMetrics(registry, schedules).attach(bus)
    registry.register(ScheduleCollector(schedules, store))
