"""The leases a worker holds: what the heartbeat renews, what it learns back, and what
happens to a job whose lease this worker can no longer vouch for.

A lease is renewed by the claim that grants it and by every heartbeat the broker answers.
When the broker cannot be reached for a whole lease after the last renewal (an outage, a
partition), the broker may already have handed the job to another worker: the job is stopped
here (a ``process`` job's child is killed; a ``thread`` or ``async`` job is interrupted, which
a job blocked outside Python only sees once it returns) and its result is never reported. It
runs again once the broker reaps the lease, elsewhere or here.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence

from faena.brokers.protocol import HeartbeatResult, WorkerSource
from faena.core import events as ev
from faena.core.clock import Clock
from faena.core.job import Lease
from faena.core.lease import next_check, overdue
from faena.worker.events import WorkerEvents
from faena.worker.heartbeat import Heartbeat
from faena.worker.ledger import Running, SlotLedger
from faena.worker.outage import Outage
from faena.worker.registration import Registration
from faena.worker.results import Completions, RunResult

__all__ = ["LeaseWatch", "Leases", "Running"]


class Leases:
    """The worker's lease callbacks, called on the heartbeat and lease-watch threads: the
    leases to renew, what the broker said of them, and the ones that ran out here."""

    def __init__(
        self,
        lock: threading.Lock,
        ledger: SlotLedger,
        completions: Completions,
        events: WorkerEvents,
        flush: Callable[[], None],
    ) -> None:
        self._lock, self._ledger = lock, ledger
        self._completions, self._events, self._flush = completions, events, flush

    def keepers(
        self,
        broker: WorkerSource,
        worker: str,
        lease_seconds: float,
        clock: Clock,
        outage: Outage,
        registration: Registration | None = None,
    ) -> tuple[Heartbeat, LeaseWatch]:
        """The threads that keep the leases: the heartbeat that renews them (and reaps dead
        workers' jobs), and the watch that stops a job whose lease ran out unrenewed."""
        heartbeat = Heartbeat(
            broker,
            worker,
            lease_seconds,
            self.leases,
            self.on_heartbeat,
            self._events.reaped,
            outage,
            clock,
            registration,
        )
        return heartbeat, LeaseWatch(clock, lease_seconds, self.renewals, self.ran_out)

    def leases(self) -> list[Lease]:
        with self._lock:
            return self._ledger.leases()

    def renewals(self) -> list[tuple[str, float]]:
        with self._lock:
            return self._ledger.renewals()

    def on_heartbeat(self, result: HeartbeatResult, sent: Sequence[Lease], at: float) -> None:
        """What the broker said of the leases ``sent`` in a call sent at ``at``. A lost lease
        or a cancel stops only the attempt the call was sent for: by the time the answer
        comes, this worker may hold a new attempt of the same job (the old lease reaped and
        the job claimed here again), which the answer does not concern."""
        with self._lock:  # the leases the broker renewed, as of when the call was sent
            self._ledger.renewed(sent, at)
        attempts = {lease.job_id: lease.attempt for lease in sent}
        for job_id in result.lost | result.cancel:
            with self._lock:
                entry = self._ledger.running.get(job_id)
                if entry is None or attempts.get(job_id) != entry.job.attempt:
                    continue  # gone, or a later attempt than the one the call named
                if job_id in result.lost:
                    entry.lost = True
                unstarted = self._ledger.drop_unstarted(job_id) is not None
            if unstarted:
                # a prefetched job never starts: its report is a cancel, which the broker
                # refuses for a lost lease (logged as lease_lost)
                self._completions.put(RunResult(entry.job, 0.0, cancelled=True))
            elif entry.executor is not None:
                reason = "cancelled"
                entry.executor.interrupt(job_id, reason)

    def ran_out(self, job_ids: list[str]) -> None:
        """Leases not renewed for a whole lease: stop the jobs, never report them."""
        with self._lock:
            gone = self._ledger.expire(job_ids)
        for entry in gone:
            self._events.emit(ev.JOB_LEASE_LOST, entry.job, status="lease_expired")
        self._flush()  # the main thread may be stuck in a broker call: write them out now
        lost = HeartbeatResult(lost=frozenset(e.job.id for e in gone))
        self.on_heartbeat(lost, [Lease(e.job.id, e.job.attempt) for e in gone], 0.0)


class LeaseWatch:
    """A thread that wakes when a lease may run out and hands the overdue ones on."""

    def __init__(
        self,
        clock: Clock,
        lease_seconds: float,
        renewals: Callable[[], list[tuple[str, float]]],
        ran_out: Callable[[list[str]], None],
    ) -> None:
        self._clock, self._lease = clock, lease_seconds
        self._renewals, self._ran_out = renewals, ran_out
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="faena-lease-watch", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def check(self) -> float:
        """Hand on the overdue leases; the seconds until the next check."""
        renewed, now = self._renewals(), self._clock.now()
        late = overdue(renewed, self._lease, now)
        if late:
            self._ran_out(late)
            renewed = self._renewals()
        return next_check(renewed, self._lease, now)

    def _run(self) -> None:
        wait = self._lease / 4
        while not self._stop.wait(wait):
            wait = self.check()
