"""The worker's graceful stop: no new claims, the running jobs get the grace budget, the rest
is given back to the broker (no attempt consumed).

Prefetched jobs never start once the worker stops: they are released at once. A job leaves
the worker only once the broker took it back; if the broker cannot be reached when the grace
is over, the leases run out by themselves and the jobs come back after one lease.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from faena.brokers.protocol import WorkerSource
from faena.core import events as ev
from faena.core.job import Lease, Outcome
from faena.errors import BrokerError
from faena.worker.events import WorkerEvents
from faena.worker.ledger import SlotLedger
from faena.worker.outage import Outage
from faena.worker.results import RunResult

Done = list[tuple[RunResult, Outcome]]


class Drain:
    def __init__(
        self,
        broker: WorkerSource,
        ledger: SlotLedger,
        lock: threading.Lock,
        events: WorkerEvents,
        outage: Outage,
        *,
        trouble: Callable[[BrokerError, float], None],
        wait: Callable[[float], object],
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._broker, self._ledger, self._lock = broker, ledger, lock
        self._events, self._outage = events, outage
        self._trouble = trouble  # note a broker failure and back off (at most the seconds)
        self._wait = wait  # sleep until a job ends or the seconds pass
        self._monotonic = monotonic  # measures the grace budget
        self.stop_at: float | None = None  # when the grace runs out (monotonic)

    @property
    def started(self) -> bool:
        return self.stop_at is not None

    def step(self, done: Done, grace: float) -> tuple[bool, Done]:
        """One step of the drain, ``done`` the outcomes to report first: whether the worker
        may exit, and the outcomes still to report (the broker failed)."""
        if self.stop_at is None:
            self.stop_at = self._monotonic() + grace
            self._events.emit(
                ev.WORKER_STOPPING,
                status="draining",
                running=len(self._ledger.running),
                grace_seconds=grace,
            )
        remaining = self.stop_at - self._monotonic()
        try:
            if done:
                self._events.reported(done, self._broker.finish([o for _, o in done]))
                self._outage.succeeded()
                done = []  # reported: a failure below must not send them again
            if self._ledger.ready:  # prefetched jobs never start once stopping: released now
                self.release_all(prefetched_only=True)
            if not self._ledger.running:
                return True, []
            if remaining <= 0 or grace <= 0:
                self.release_all()
                return True, []
        except BrokerError as exc:
            if remaining <= 0 or grace <= 0:
                # leases run out by themselves: the jobs come back after one lease
                what = {"error_type": type(exc).__name__, "error_message": str(exc)}
                self._events.emit(ev.WORKER_ERROR, None, status="broker_unavailable", **what)
                return True, []
            self._trouble(exc, remaining)
            return False, done
        self._wait(min(remaining, 0.5))
        return False, []

    def release_all(self, prefetched_only: bool = False) -> None:
        """Give the jobs back (no attempt consumed): all of them, or only the prefetched ones
        that never started. They leave this worker only once the broker took them back."""
        with self._lock:
            held = self._ledger.to_release(prefetched_only)
        leases = [Lease(r.job.id, r.job.attempt) for r in held]
        released = self._broker.release(leases) if leases else []
        with self._lock:
            self._ledger.released(held)
        for r, ok in zip(held, released, strict=True):
            if ok:
                extra = {} if r.started else {"prefetched": True}  # it never started
                self._events.emit(ev.JOB_RELEASED, r.job, status="released", **extra)
