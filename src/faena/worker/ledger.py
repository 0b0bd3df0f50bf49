"""The worker's slot ledger: which jobs it holds a lease on and which slots are taken.

Pure bookkeeping, no threads, no clock, no I/O: the worker calls it under its own lock. It
answers what the dispatcher asks: how many jobs to claim now, which prefetched jobs start,
which leases to renew or give back. Its invariants:

- at most ``concurrency`` jobs run (``active``): a prefetched job starts only in a free slot;
- at most ``concurrency + prefetch`` leases are held, counting the slots that turns in
  progress reserve (``len(running) + turn_slots <= capacity`` whenever a claim is sized);
- a slot counts as taken until its job's outcome reaches the broker: an ended job leaves
  ``running`` only as its turn reserves a slot for its report.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from faena.core.job import Job, Lease

if TYPE_CHECKING:
    from faena.task import Task
    from faena.worker.executors import Executor


@dataclass
class Running:
    job: Job
    task: Task[Any, Any] | None
    executor: Executor | None
    renewed: float = 0.0  # when the call that last renewed its lease was sent (app clock)
    lost: bool = False
    expired: bool = False  # its lease ran out here unrenewed: stopped, never reported
    started: bool = False  # handed to an executor (a prefetched job waits until a slot frees)
    ended: bool = False  # its attempt ended (or never began): no longer takes a slot


class SlotLedger:
    def __init__(self, concurrency: int, prefetch: int = 0) -> None:
        self.concurrency = concurrency
        self.capacity = concurrency + prefetch  # leases held at most: slots and prefetch
        # every job this worker holds a lease on: running, prefetched (waiting in ``ready``
        # for a slot) or ended and not yet reported
        self.running: dict[str, Running] = {}
        self.ready: deque[Job] = deque()
        self.most_ready = 0  # the most prefetched jobs that waited at once (the logs say it)
        self.active = 0  # jobs handed to an executor whose attempt has not ended
        # slots that turns in progress hold: each, the jobs it reports or the jobs it claims,
        # whichever is more (the broker swaps the ones for the others in one step)
        self.turn_slots = 0
        self.turns = 0  # turns in progress on executor threads
        self.want = True  # the last claim filled every free slot: more work may be waiting
        self.saturated = False  # the last claim was held back by a full pool or cap
        # set (without a lock: a signal handler does it) once the worker stops: prefetched
        # jobs never start from then on, they are released
        self.stopping = False

    # turns -----------------------------------------------------------------------------
    def pop_ended(
        self, job_ids: list[str], attempts: Sequence[int] | None = None
    ) -> list[Running | None]:
        """The entries of the jobs whose results came in, taken out of ``running``; their
        slots free (an entry is None if the job was let go meanwhile). With ``attempts``
        (each result's), a result of an earlier attempt than the entry's leaves it alone
        (None): the job was reaped and claimed here again, and its new attempt runs on."""
        if attempts is None:
            entries = [self.running.pop(job_id, None) for job_id in job_ids]
        else:
            entries = [self._pop_attempt(j, a) for j, a in zip(job_ids, attempts, strict=True)]
        for entry in entries:
            if entry is not None and entry.started and not entry.ended:
                entry.ended = True
                self.active -= 1
        return entries

    def _pop_attempt(self, job_id: str, attempt: int) -> Running | None:
        entry = self.running.get(job_id)
        if entry is None or entry.job.attempt != attempt:
            return None
        return self.running.pop(job_id)

    def begin_turn(self, reports: int) -> tuple[int, int]:
        """A turn that reports ``reports`` outcomes begins: the jobs it claims (0 unless more
        work may be waiting) and the slots it holds meanwhile, counted as taken."""
        free = self.capacity - len(self.running) - self.turn_slots
        limit = max(0, free) if self.want else 0
        held = max(limit, reports)
        self.turn_slots += held
        return limit, held

    def claimed(self, jobs: list[Job], asked: float, held: int) -> list[Job]:
        """The broker answered a turn that held ``held`` slots: they pass to ``jobs`` (their
        leases granted at ``asked`` at least); the prefetched jobs that start now."""
        self.turn_slots -= held
        for job in jobs:
            old = self.running.get(job.id)
            if old is not None and old.started and not old.ended:
                # an earlier attempt of the job, reaped (its lease lost) and claimed here
                # again: its slot passes to the new attempt, its late result is refused
                old.ended = True
                self.active -= 1
            self.running[job.id] = Running(job, None, None, asked)
        self.ready.extend(jobs)
        starts = self.take_ready()
        self.most_ready = max(self.most_ready, len(self.ready))
        return starts

    def end_turn(self, held: int) -> None:
        """A turn gives back the slots it still holds (its broker call failed)."""
        self.turn_slots -= held

    def after_claim(self, asked_for: int, got: int, saturated: bool) -> None:
        self.want = got == asked_for
        self.saturated = saturated

    def held_back(self) -> None:
        """A middleware let the turn claim fewer jobs than it could: the next claim waits
        for a short poll (or a wake-up), as after a full pool, instead of coming at once."""
        self.want = False
        self.saturated = True

    def more_wanted(self) -> bool:
        """Claim again at once: the last claim filled every slot and some are free."""
        return self.want and self.capacity > len(self.running) + self.turn_slots

    def has_room(self) -> bool:
        """A lease could be held that no turn in progress claims for (the dispatcher asks
        the broker when a delayed job comes due only then)."""
        return len(self.running) + self.turn_slots < self.capacity

    # slots -----------------------------------------------------------------------------
    def take_ready(self) -> list[Job]:
        """Prefetched jobs for the free slots, now counted as started. None once the worker
        stops: those are released instead."""
        starts: list[Job] = []
        while self.ready and self.active < self.concurrency and not self.stopping:
            job = self.ready.popleft()
            self.active += 1
            self.running[job.id].started = True
            starts.append(job)
        return starts

    def slot_freed(self, job_id: str, attempt: int | None = None) -> list[Job]:
        """A job's attempt ended but is not reported yet (its lease is still held): its slot
        takes the next prefetched jobs, returned. An earlier ``attempt`` than the entry's
        frees nothing (its slot passed to the new attempt when that was claimed)."""
        entry = self.running.get(job_id)
        current = entry is not None and (attempt is None or entry.job.attempt == attempt)
        if entry is not None and current and not entry.ended:
            entry.ended = True
            self.active -= 1
        return self.take_ready()

    def drop_unstarted(self, job_id: str) -> Running | None:
        """A prefetched job that must never start (cancelled, its lease lost): taken out of
        the waiting line and counted as ended; its entry, or None if it started already."""
        entry = self.running.get(job_id)
        if entry is None or entry.started or entry.ended or entry.job not in self.ready:
            return None
        self.ready.remove(entry.job)
        entry.ended = True
        return entry

    def withhold(self, jobs: Sequence[Job]) -> list[Running]:
        """Prefetched ``jobs`` to give back: out of the waiting line, so no slot starts one
        while the release is under way; their entries (they stay held until released)."""
        out = []
        for job in jobs:
            if job in self.ready:
                self.ready.remove(job)
                out.append(self.running[job.id])
        return out

    def restore(self, entries: Sequence[Running]) -> list[Job]:
        """The release of withheld jobs failed: they wait for a slot again, first in line;
        the ones that start now (slots freed meanwhile)."""
        for entry in reversed(entries):
            if self.running.get(entry.job.id) is entry:
                self.ready.appendleft(entry.job)
        return self.take_ready()

    # leases ----------------------------------------------------------------------------
    def leases(self) -> list[Lease]:
        """The leases to renew: every one held and not lost."""
        return [Lease(r.job.id, r.job.attempt) for r in self.running.values() if not r.lost]

    def renewals(self) -> list[tuple[str, float]]:
        return [(r.job.id, r.renewed) for r in self.running.values() if not r.lost]

    def renewed(self, sent: Sequence[Lease], at: float) -> None:
        """The broker renewed the leases ``sent`` in a call sent at ``at``."""
        for lease in sent:
            entry = self.running.get(lease.job_id)
            if entry is not None and entry.job.attempt == lease.attempt:
                entry.renewed = max(entry.renewed, at)

    def expire(self, job_ids: list[str]) -> list[Running]:
        """Leases that ran out here unrenewed: the entries newly marked expired."""
        entries = [self.running.get(job_id) for job_id in job_ids]
        gone = [e for e in entries if e is not None and not e.lost]
        for entry in gone:
            entry.expired = True
        return gone

    def to_release(self, prefetched_only: bool = False) -> list[Running]:
        """The jobs to give back: all, or only the prefetched ones that never started."""
        return [
            r for r in self.running.values() if not prefetched_only or not (r.started or r.ended)
        ]

    def released(self, held: list[Running]) -> None:
        """``held`` were given back (or the broker could not say): they leave the ledger."""
        for r in held:
            self.running.pop(r.job.id, None)
            if r.job in self.ready:
                self.ready.remove(r.job)
