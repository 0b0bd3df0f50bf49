"""One round of the scheduler: for each declared schedule, read its last tick from the store,
plan the due ticks (:mod:`faena.schedules.missed`) and fire each with the store's
compare-and-set (``Broker.fire_schedule``).

Every process may run rounds at any time: a tick another process fired first is refused by
the store and skipped here without a word. What a round did is logged (``schedule.fired``,
``schedule.skipped``, ``schedule.armed``, ``schedule.failed``) and published on the app's
event bus (``schedule.fired`` feeds the metrics), by the process whose write won.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from faena.brokers.protocol import OperatorStore
from faena.core.clock import Clock
from faena.core.events import SCHEDULE_FIRED, SCHEDULE_SKIPPED, Event, EventBus
from faena.schedules.missed import Plan, plan
from faena.schedules.spec import Schedule

SCHEDULE_ARMED = "schedule.armed"
SCHEDULE_FAILED = "schedule.failed"

_log = logging.getLogger("faena.schedules")


@dataclass(frozen=True, slots=True)
class Fired:
    """A tick this process fired: its jobs are in the store."""

    schedule: str
    tick: float
    lag: float  # seconds from the tick to the enqueue
    job_ids: tuple[str, ...]


class Scheduler:
    """Rounds over ``schedules`` against ``store`` (or a function that returns it, asked at
    every round: a store that cannot be opened yet is a failed round, not a failed start), on
    ``clock``; ``process`` names this process in the log lines (a worker id, ``server``)."""

    def __init__(
        self,
        store: OperatorStore | Callable[[], OperatorStore],
        schedules: Mapping[str, Schedule],
        clock: Clock,
        *,
        events: EventBus | None = None,
        process: str = "",
    ) -> None:
        self._get_store = store if callable(store) else (lambda: store)
        self._schedules = dict(schedules)
        self._clock = clock
        self._events = events
        self._process = process
        self._failing: set[str] = set()  # schedules whose last round failed (logged once)

    @property
    def schedules(self) -> Mapping[str, Schedule]:
        return self._schedules

    def run_once(self) -> list[Fired]:
        """One round; what this process fired. A failing store or target is logged (once
        until it works again) and never raised: the next round tries again."""
        fired: list[Fired] = []
        try:
            store = self._get_store()
            states = {s.name: s.last_tick for s in store.schedule_states()}
        except Exception as exc:
            self._failed("*", exc)
            return fired
        self._failing.discard("*")
        for name, schedule in self._schedules.items():
            try:
                fired.extend(self._round(store, schedule, states.get(name)))
            except Exception as exc:
                self._failed(name, exc)
            else:
                self._failing.discard(name)
        return fired

    def next_tick(self) -> float | None:
        """The earliest tick of any schedule after now (``None``: no schedules)."""
        now = self._clock.now()
        return min((s.trigger.after(now) for s in self._schedules.values()), default=None)

    def _round(self, store: OperatorStore, schedule: Schedule, last: float | None) -> list[Fired]:
        now = self._clock.now()
        todo = plan(schedule.trigger, last, now, schedule.missed, schedule.catch_up_max)
        if todo.arm is not None:
            if store.fire_schedule(schedule.name, todo.arm, []) is not None:
                _log.info(
                    "schedule armed: its first tick is the next one",
                    extra={"event": SCHEDULE_ARMED, "schedule": schedule.name,
                           "tick": todo.arm, "scheduler": self._process},
                )  # fmt: skip
            return []
        out: list[Fired] = []
        for tick in todo.fire:
            jobs = schedule.target.jobs_for(schedule.name, tick)
            got = store.fire_schedule(schedule.name, tick, jobs)
            if got is None:
                continue  # another process fired it (or a newer tick) first
            if not out and todo.skipped:
                self._skipped(schedule, todo)
            done = Fired(schedule.name, tick, self._clock.now() - tick, tuple(j.id for j in got))
            out.append(done)
            self._announce(done)
        return out

    def _announce(self, done: Fired) -> None:
        fields = {
            "schedule": done.schedule,
            "tick": done.tick,
            "lag_seconds": round(done.lag, 6),
            "job_ids": list(done.job_ids),
            "scheduler": self._process,
        }
        _log.info("schedule fired", extra={"event": SCHEDULE_FIRED, **fields})
        if self._events is not None and self._events.wants(SCHEDULE_FIRED):
            self._events.publish(Event(SCHEDULE_FIRED, self._clock.now(), fields))

    def _skipped(self, schedule: Schedule, todo: Plan) -> None:
        _log.warning(
            "missed ticks skipped (the scheduler was not running)",
            extra={
                "event": SCHEDULE_SKIPPED,
                "schedule": schedule.name,
                "skipped": todo.skipped,
                "skipped_at_least": todo.skipped_at_least,
                "first_tick": todo.skipped_first,
                "last_tick": todo.skipped_last,
                "policy": schedule.missed.value,
                "scheduler": self._process,
            },
        )
        if self._events is not None and self._events.wants(SCHEDULE_SKIPPED):
            fields = {"schedule": schedule.name, "skipped": todo.skipped}
            self._events.publish(Event(SCHEDULE_SKIPPED, self._clock.now(), fields))

    def _failed(self, name: str, exc: Exception) -> None:
        if name in self._failing:
            return
        self._failing.add(name)
        _log.warning(
            "schedule round failed; retrying at the next round",
            extra={
                "event": SCHEDULE_FAILED,
                "schedule": name,
                "error_type": type(exc).__name__,
                "error_message": str(exc),
                "scheduler": self._process,
            },
        )
