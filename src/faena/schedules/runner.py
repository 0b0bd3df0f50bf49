"""The scheduler's thread in a ``faena worker``, ``faena server`` or ``faena up`` process:
a round about every second (jittered, and sooner when a tick is nearer), until stopped.

Every such process of an app that declares schedules runs one (``--no-scheduler`` turns it
off); the store, not a leader, makes each tick fire once (:mod:`faena.schedules.scheduler`).
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Mapping
from typing import Protocol

from faena.brokers.protocol import OperatorStore
from faena.core.clock import Clock
from faena.core.events import EventBus
from faena.schedules.scheduler import Scheduler
from faena.schedules.spec import Schedule

#: seconds between rounds at most, and how far each wait may stray from it (a fraction), so
#: the processes of a fleet started together do not all read the store at the same moments
POLL_SECONDS = 1.0
JITTER = 0.2
#: a round right after a tick waits this much more at most (the processes spread out)
AFTER_TICK_SECONDS = 0.05

_log = logging.getLogger("faena.schedules")


class Schedules(Protocol):
    """What the thread needs of the app (``faena.App``)."""

    @property
    def broker(self) -> OperatorStore: ...

    schedules: dict[str, Schedule]
    clock: Clock
    events: EventBus


class SchedulerThread:
    def __init__(
        self,
        scheduler: Scheduler,
        clock: Clock,
        *,
        poll_seconds: float = POLL_SECONDS,
        rng: random.Random | None = None,
    ) -> None:
        self.scheduler = scheduler
        self._clock = clock
        self._poll = poll_seconds
        self._rng = rng or random.Random()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="faena-scheduler", daemon=True)
        self.rounds = 0

    def start(self) -> SchedulerThread:
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._thread.join(timeout)

    def wait_seconds(self) -> float:
        """How long to sleep before the next round (real seconds)."""
        poll = self._poll * self._rng.uniform(1 - JITTER, 1 + JITTER)
        nxt = self.scheduler.next_tick()
        if nxt is None:
            return poll
        until = max(0.0, nxt - self._clock.now()) + self._rng.uniform(0, AFTER_TICK_SECONDS)
        return min(poll, until)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.scheduler.run_once()  # never raises: failures are logged
            self.rounds += 1
            try:
                wait = self.wait_seconds()
            except Exception:  # a trigger that cannot say its next tick: poll
                _log.exception("schedule next tick failed", extra={"event": "schedule.failed"})
                wait = self._poll
            self._stop.wait(wait)


def start_scheduler(
    app: Schedules, process: str, *, enabled: bool = True, poll_seconds: float = POLL_SECONDS
) -> SchedulerThread | None:
    """Start the scheduler thread of ``app`` if it declares schedules and ``enabled``."""
    if not enabled or not app.schedules:
        return None
    scheduler = Scheduler(
        lambda: app.broker, _copy(app.schedules), app.clock, events=app.events, process=process
    )
    _log.info(
        "scheduler started",
        extra={
            "event": "scheduler.started",
            "scheduler": process,
            "schedules": sorted(app.schedules),
        },
    )
    return SchedulerThread(scheduler, app.clock, poll_seconds=poll_seconds).start()


def _copy(schedules: Mapping[str, Schedule]) -> dict[str, Schedule]:
    return dict(schedules)
