"""Events: the stable names of what happens to jobs and workers, and a tiny bus.

Behaviour around jobs (logs, metrics, tracing, rate limits) subscribes here instead of editing
the worker loop. Event names double as the ``event`` field of log lines.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from faena.core.frozen import quick_init

JOB_ENQUEUED = "job.enqueued"
JOB_CLAIMED = "job.claimed"
JOB_SUCCEEDED = "job.succeeded"
JOB_FAILED = "job.failed"  # attempt failed, will retry
JOB_DEAD = "job.dead"
JOB_TIMEOUT = "job.timeout"
JOB_RELEASED = "job.released"
JOB_CANCELLED = "job.cancelled"
JOB_LEASE_LOST = "job.lease_lost"
LEASE_EXPIRED = "lease.expired"
WORKER_STARTED = "worker.started"
WORKER_STOPPING = "worker.stopping"
WORKER_STOPPED = "worker.stopped"
WORKER_ERROR = "worker.error"
WORKER_MIDDLEWARE_ERROR = "worker.middleware_error"  # a middleware hook raised
WORKER_BROKER_UNAVAILABLE = "worker.broker_unavailable"  # an outage began (or goes on)
WORKER_BROKER_RECOVERED = "worker.broker_recovered"  # the broker answers again
#: what a scheduler did (faena.schedules.scheduler); published for metrics, while their log
#: lines are written by the scheduler itself (logger faena.schedules) in whichever process
#: runs it, a worker or not: the event log leaves them out
SCHEDULE_FIRED = "schedule.fired"
SCHEDULE_SKIPPED = "schedule.skipped"
SCHEDULE_EVENTS = frozenset({SCHEDULE_FIRED, SCHEDULE_SKIPPED})

ALL_EVENTS = (
    JOB_ENQUEUED,
    JOB_CLAIMED,
    JOB_SUCCEEDED,
    JOB_FAILED,
    JOB_DEAD,
    JOB_TIMEOUT,
    JOB_RELEASED,
    JOB_CANCELLED,
    JOB_LEASE_LOST,
    LEASE_EXPIRED,
    WORKER_STARTED,
    WORKER_STOPPING,
    WORKER_STOPPED,
    WORKER_ERROR,
    WORKER_MIDDLEWARE_ERROR,
    WORKER_BROKER_UNAVAILABLE,
    WORKER_BROKER_RECOVERED,
)


@quick_init
@dataclass(frozen=True, slots=True)
class Event:
    name: str
    at: float
    fields: dict[str, Any] = field(default_factory=dict)


Handler = Callable[[Event], None]
_log = logging.getLogger("faena.events")


class EventBus:
    """Synchronous publish/subscribe; a failing subscriber is logged, never fatal."""

    def __init__(self) -> None:
        self._subs: dict[str, list[Handler]] = defaultdict(list)
        self._any: list[Handler] = []

    def subscribe(self, name: str | None, handler: Handler) -> None:
        """Subscribe to one event name, or to every event with ``None``."""
        if name is None:
            self._any.append(handler)
        else:
            self._subs[name].append(handler)

    def handlers(self, name: str) -> list[Handler]:
        """Every handler an event called ``name`` reaches."""
        return [*self._subs.get(name, ()), *self._any]

    def wants(self, name: str) -> bool:
        """Whether anyone listens to ``name`` (so a publisher may skip building the event)."""
        return bool(self._any or self._subs.get(name))

    def publish(self, event: Event) -> None:
        for handler in (*self._subs.get(event.name, ()), *self._any):
            try:
                handler(event)
            except Exception:
                _log.exception(
                    "event subscriber failed",
                    extra={"event": "events.subscriber_error", "subscribed_to": event.name},
                )
