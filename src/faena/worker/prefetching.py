"""What a worker does for its adaptive prefetch (``--prefetch auto``), beside its turns:
feeding :class:`~faena.worker.adaptive.AdaptivePrefetch` the run times and round trips it
measures, sizing the ledger from its answer, and giving back at once the prefetched jobs it
must not hold (a pool's, or ones waiting behind long jobs). The decisions are the pure
module's; this one holds the worker's state they act on. The worker's lock guards the
ledger: the methods that say "lock held" are called under it, the others take it."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from faena.brokers.protocol import WorkerSource
from faena.core import events as ev
from faena.core.job import Job, Lease
from faena.errors import BrokerError
from faena.worker.adaptive import AdaptivePrefetch, pooled
from faena.worker.events import WorkerEvents
from faena.worker.ledger import Running, SlotLedger
from faena.worker.outage import Outage
from faena.worker.results import RunResult


class Prefetching:
    def __init__(
        self,
        adaptive: AdaptivePrefetch | None,
        concurrency: int,
        ledger: SlotLedger,
        lock: threading.Lock,
        events: WorkerEvents,
        outage: Outage,
        *,
        source: Callable[[], WorkerSource],
        pools: Callable[[], Mapping[str, int]],
        start: Callable[[Job], None],
    ) -> None:
        self.adaptive = adaptive  # None: a fixed prefetch (or none)
        self._concurrency = concurrency
        self._ledger = ledger
        self._lock = lock
        self._events = events
        self._outage = outage
        self._source = source
        self._pools = pools
        self._start = start
        # the last time a slot freed or a prefetched job started (monotonic): prefetched
        # jobs waiting longer than a long job's time are let go
        self.progress = time.monotonic()
        self.let_go_counts = {"pool": 0, "long_jobs": 0}  # prefetched jobs given back early

    def moved(self) -> None:
        """A slot freed or a prefetched job started."""
        self.progress = time.monotonic()

    def ran(self, results: Sequence[RunResult]) -> None:
        """At a turn's start (lock held): the attempts that ended are measured and the
        ledger holds as many leases as the prefetch's depth allows."""
        adaptive = self.adaptive
        if adaptive is None:
            return
        pools = self._pools()
        for r in results:
            adaptive.ran(r.duration, r.job, pools)
        self._ledger.capacity = self._concurrency + adaptive.depth()

    def report_may_wait(self, result: RunResult, started: Sequence[Job] = ()) -> bool:
        """Whether an ended job's report may wait for a later turn (lock held; its slot has
        started the prefetched jobs ``started``), so that one turn reports several jobs:
        with the adaptive prefetch, while more jobs wait prefetched than the slots run
        during one round trip (:meth:`AdaptivePrefetch.refill_at`: the turn that tops the
        prefetch up comes before they run out), the job held no pool's slot (given back at
        once) and was not a long one (the adaptive prefetch must hear of it at once: it
        stops), and no job it started has a timeout (the main thread, which enforces it,
        must wake to see its deadline)."""
        adaptive = self.adaptive
        if adaptive is None or self._ledger.stopping:
            return False
        if any(job.timeout is not None for job in started):
            return False
        if len(self._ledger.ready) <= adaptive.refill_at():
            return False
        return result.duration < adaptive.long_after() and not pooled(result.job, self._pools())

    def claimed(self, granted: int, took: float) -> list[Running]:
        """After a claim (lock held): the round trip is measured, and the prefetched jobs of
        a pool, which are never held (the prefetch stops meanwhile), are withheld to be let
        go (:meth:`let_go`)."""
        adaptive = self.adaptive
        if adaptive is None:
            return []
        if granted > 0:
            adaptive.round_trip(took)
        pools = self._pools()
        out = self._ledger.withhold([j for j in self._ledger.ready if pooled(j, pools)])
        if out:
            adaptive.claimed_pooled()
        return out

    def let_go(self, held: list[Running], reason: str) -> None:
        """Give withheld prefetched jobs back at once (no attempt consumed): another worker
        may run them now. A broker error puts them back in line, to start as slots free."""
        leases = [Lease(r.job.id, r.job.attempt) for r in held]
        try:
            released = self._source().release(leases)
        except BrokerError as exc:
            self._outage.failed(exc)
            with self._lock:
                starts = self._ledger.restore(held)
            for job in starts:
                self._start(job)
            return
        with self._lock:
            self._ledger.released(held)
        self.let_go_counts[reason] = self.let_go_counts.get(reason, 0) + len(held)
        for r, ok in zip(held, released, strict=True):
            if ok:
                self._events.emit(
                    ev.JOB_RELEASED, r.job, status="released", prefetched=True, reason=reason
                )

    def release_stalled(self) -> float | None:
        """Prefetched jobs that waited while no slot freed for a long job's time are given
        back (the running jobs are long). Seconds until the next check (None: no check)."""
        adaptive = self.adaptive
        if adaptive is None:
            return None
        now = time.monotonic()
        with self._lock:
            waiting = len(self._ledger.ready)
            if not adaptive.stalled(waiting, self.progress, now):
                return adaptive.stall_check_in(waiting, self.progress, now)
            adaptive.stalled_seen()
            self._ledger.capacity = self._concurrency  # no prefetch until jobs are short again
            held = self._ledger.withhold(list(self._ledger.ready))
        self.let_go(held, "long_jobs")
        return None

    def summary(self, setting: int | str) -> dict[str, Any]:
        """What the prefetch did, for the worker.stopped line: the setting, the most jobs
        that waited prefetched at once, and (auto) the prefetch given back early."""
        out: dict[str, Any] = {"prefetch": setting, "prefetched_most": self._ledger.most_ready}
        if self.adaptive is not None:
            out["prefetch_let_go"] = dict(self.let_go_counts)
        return out
