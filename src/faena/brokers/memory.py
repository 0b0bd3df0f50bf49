"""In-memory reference broker: the contract in plain Python, for tests and one process."""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Mapping, Sequence

from faena.brokers import autoscalers
from faena.brokers.bulk import BulkActions
from faena.brokers.memory_pipelines import MemoryPipelines, ends
from faena.brokers.protocol import (
    AutoscalerRecord,
    AutoscalerReport,
    ClaimResult,
    HeartbeatResult,
    JobPage,
    JobSearch,
    JobStats,
    PoolStat,
    QueueStat,
    Reaped,
    ScheduleState,
    WorkerRecord,
    WorkerReport,
)
from faena.brokers.refusals import key_taken, no_such_job, unknown_pool
from faena.brokers.registry import check_report
from faena.brokers.schedules import check_fire
from faena.core import checks, lifecycle, stats
from faena.core import search as searching
from faena.core.clock import SYSTEM_CLOCK, Clock
from faena.core.job import Job, Lease, NewJob, Outcome
from faena.core.lease import expired
from faena.core.pools import DEFAULT_POOL, DEFAULT_POOL_SLOTS, Admission, Candidate, check_pools
from faena.core.retention import check_prune_limit
from faena.core.states import (
    HOLDS_IDEMPOTENCY_KEY,
    LEASED,
    PENDING,
    TERMINAL,
    JobState,
    check_transition,
)
from faena.errors import InvalidTransitionError, JobNotFoundError, UnknownPoolError


class PipeWaker:
    """A pipe that a broker writes one byte to when work may have arrived."""

    def __init__(self, on_close: object = None) -> None:
        self._r, self._w = os.pipe()
        os.set_blocking(self._r, False)
        os.set_blocking(self._w, False)
        self._on_close = on_close

    def fileno(self) -> int:
        return self._r

    def poke(self) -> None:
        with contextlib.suppress(OSError):  # already readable, or closed
            os.write(self._w, b"\x01")

    def drain(self) -> None:
        with contextlib.suppress(OSError):
            while os.read(self._r, 4096):
                pass

    def close(self) -> None:
        if callable(self._on_close):
            self._on_close(self)
        for fd in (self._r, self._w):
            with contextlib.suppress(OSError):
                os.close(fd)


class MemoryBroker(MemoryPipelines, BulkActions):
    kind = "memory"
    shared_across_processes = False
    parallel_calls = False

    def __init__(self, clock: Clock = SYSTEM_CLOCK) -> None:
        self._clock = clock
        self._set_up = False
        self._lock = threading.RLock()
        self._jobs: dict[str, Job] = {}
        self._order: dict[str, int] = {}
        self._seq = 0
        self._keys: dict[str, str] = {}
        self._pools: dict[str, int] = {DEFAULT_POOL: DEFAULT_POOL_SLOTS}
        self._parallelism: int | None = None
        self._wakers: list[PipeWaker] = []
        self._paused: set[str] = set()
        self._workers: dict[str, WorkerRecord] = {}
        self._autoscalers: dict[str, AutoscalerRecord] = {}
        self._schedules: dict[str, ScheduleState] = {}
        self._counters: stats.Counters = {}
        self._init_pipelines()

    @classmethod
    def from_url(cls, url: str, *, clock: Clock = SYSTEM_CLOCK) -> MemoryBroker:
        return cls(clock=clock)

    def setup(self) -> None:
        self._set_up = True

    def exists(self) -> bool:
        return self._set_up

    def close(self) -> None:
        return None

    def set_pools(self, pools: Mapping[str, int]) -> None:
        checked = check_pools(pools)
        with self._lock:
            self._pools.update(checked)

    def set_parallelism(self, limit: int | None) -> None:
        with self._lock:
            self._parallelism = limit

    def get_parallelism(self) -> int | None:
        return self._parallelism

    # producers -----------------------------------------------------------------------
    def enqueue(self, jobs: Sequence[NewJob]) -> list[Job]:
        checks.check_new_jobs(jobs)
        now = self._clock.now()
        out: list[Job] = []
        with self._lock:
            for new in jobs:
                if new.pool not in self._pools:
                    raise UnknownPoolError(unknown_pool(new.pool, self._pools))
            for new in jobs:
                existing = self._jobs.get(new.id) or self._key_holder(new.idempotency_key)
                if existing is not None:
                    out.append(existing)
                    continue
                job = lifecycle.create(new, now)
                self._jobs[job.id] = job
                self._seq += 1
                self._order[job.id] = self._seq
                if job.idempotency_key is not None:
                    self._keys[job.idempotency_key] = job.id
                out.append(job)
            for waker in self._wakers:
                waker.poke()
        return out

    def _key_holder(self, key: str | None) -> Job | None:
        if key is None or key not in self._keys:
            return None
        job = self._jobs.get(self._keys[key])
        if job is None or job.state not in HOLDS_IDEMPOTENCY_KEY:
            return None
        return job

    # workers -------------------------------------------------------------------------
    def claim(
        self, worker: str, queues: Sequence[str], limit: int, lease_seconds: float
    ) -> ClaimResult:
        checks.check_claim(worker, queues)
        now = self._clock.now()
        with self._lock:
            reaped = self._reap(now)
            wanted = set(queues) - self._paused
            ready = sorted(
                (
                    j
                    for j in self._jobs.values()
                    if j.queue in wanted and lifecycle.runnable(j, now)
                ),
                key=lambda j: (-j.priority, self._order[j.id]),
            )
            admission = self._admission(now, limit)
            chosen = admission.admit(Candidate(j.id, j.pool, j.pool_slots) for j in ready)
            claimed = []
            for job_id in chosen:
                claimed.append(
                    self._put(lifecycle.claim(self._jobs[job_id], worker, now, lease_seconds))
                )
        return ClaimResult(claimed, reaped, admission.blocked)

    def _admission(self, now: float, limit: int) -> Admission:
        used: dict[str, int] = {}
        running = 0
        for job in self._jobs.values():
            if job.state in LEASED and not expired(job.lease_expires_at, now):
                used[job.pool] = used.get(job.pool, 0) + job.pool_slots
                running += 1
        free = {name: size - used.get(name, 0) for name, size in self._pools.items()}
        par = None if self._parallelism is None else self._parallelism - running
        return Admission(free, par, limit)

    def heartbeat(
        self, worker: str, leases: Sequence[Lease], lease_seconds: float
    ) -> HeartbeatResult:
        checks.check_heartbeat(worker, leases)
        now = self._clock.now()
        lost: set[str] = set()
        cancel: set[str] = set()
        with self._lock:
            for lease in leases:
                job = self._jobs.get(lease.job_id)
                if job is None or not lifecycle.holds(job, lease.job_id, lease.attempt):
                    lost.add(lease.job_id)
                    continue
                self._jobs[job.id] = job.evolve(lease_expires_at=now + lease_seconds)
                if job.cancel_requested:
                    cancel.add(job.id)
        return HeartbeatResult(frozenset(lost), frozenset(cancel))

    def finish(self, outcomes: Sequence[Outcome]) -> list[bool]:
        checks.check_outcomes(outcomes)
        now = self._clock.now()
        results = []
        with self._lock:
            for outcome in outcomes:
                job = self._jobs.get(outcome.job_id)
                if job is None or not lifecycle.holds(job, outcome.job_id, outcome.attempt):
                    results.append(False)
                    continue
                self._put(lifecycle.finish(job, outcome, now))
                results.append(True)
            if any(o.state is JobState.FAILED for o in outcomes):
                for waker in self._wakers:
                    waker.poke()
        return results

    def finish_and_claim(
        self,
        outcomes: Sequence[Outcome],
        worker: str,
        queues: Sequence[str],
        limit: int,
        lease_seconds: float,
    ) -> tuple[list[bool], ClaimResult]:
        checks.check_claim(worker, queues)
        with self._lock:
            done = self.finish(outcomes)
            return done, self.claim(worker, queues, limit, lease_seconds)

    def release(self, leases: Sequence[Lease]) -> list[bool]:
        checks.check_leases(leases)
        now = self._clock.now()
        results = []
        with self._lock:
            for lease in leases:
                job = self._jobs.get(lease.job_id)
                if job is None or not lifecycle.holds(job, lease.job_id, lease.attempt):
                    results.append(False)
                    continue
                self._put(lifecycle.release(job, now))
                results.append(True)
            for waker in self._wakers:
                waker.poke()
        return results

    def reap(self) -> list[Reaped]:
        with self._lock:
            return self._reap(self._clock.now())

    def _reap(self, now: float) -> list[Reaped]:
        reaped = []
        for job in list(self._jobs.values()):
            if job.state in LEASED and expired(job.lease_expires_at, now):
                new = self._put(lifecycle.expire(job, now))
                reaped.append(Reaped(new, new.state))
        return reaped

    def waker(self, queues: Sequence[str]) -> PipeWaker:
        checks.check_queues(queues)
        waker = PipeWaker(on_close=self._forget)
        with self._lock:
            self._wakers.append(waker)
        return waker

    def _forget(self, waker: PipeWaker) -> None:
        with self._lock:
            if waker in self._wakers:
                self._wakers.remove(waker)

    def next_run_at(self, queues: Sequence[str]) -> float | None:
        checks.check_queues(queues)
        with self._lock:
            wanted = set(queues) - self._paused
            times = [
                j.run_at for j in self._jobs.values() if j.queue in wanted and j.state in PENDING
            ]
        return min(times, default=None)

    # operators -----------------------------------------------------------------------
    def get(self, job_id: str) -> Job | None:
        checks.check_text("job id", job_id)
        with self._lock:
            return self._jobs.get(job_id)

    def job_keys(self, job_ids: Sequence[str]) -> dict[str, int]:
        with self._lock:
            return {i: self._order[i] for i in job_ids if i in self._jobs}

    def job_by_key(self, key: int) -> Job | None:
        with self._lock:
            for job_id, seq in self._order.items():
                if seq == key:
                    return self._jobs.get(job_id)
        return None

    def list_jobs(
        self,
        *,
        state: JobState | None = None,
        queue: str | None = None,
        task: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[Job]:
        checks.check_filters(state, queue, task, limit, offset)
        with self._lock:
            jobs = [
                j
                for j in self._jobs.values()
                if (state is None or j.state is state)
                and (queue is None or j.queue == queue)
                and (task is None or j.task == task)
            ]
            jobs.sort(key=lambda j: -self._order[j.id])
        return jobs[offset : offset + limit]

    def search_jobs(
        self, search: JobSearch, *, limit: int = 100, cursor: str | None = None
    ) -> JobPage:
        with self._lock:
            held = [(self._order[i], j) for i, j in self._jobs.items()]
        return searching.in_memory(held, search, limit, cursor)

    def job_stats(self, *, minutes: int = 60, queue: str | None = None) -> JobStats:
        with self._lock:
            held = list(self._jobs.values())
            counters = dict(self._counters)
        return stats.in_memory(held, counters, self._clock.now(), minutes, queue)

    def retry(self, job_id: str) -> Job:
        checks.check_text("job id", job_id)
        with self._lock:
            job = self._require(job_id)
            lifecycle.check_retry(job)
            if job.idempotency_key is not None:
                holder = self._key_holder(job.idempotency_key)
                if holder is not None and holder.id != job.id:
                    raise InvalidTransitionError(key_taken(job, holder.id))
                self._keys[job.idempotency_key] = job.id
            new = self._put(lifecycle.manual_retry(job, self._clock.now()))
            for waker in self._wakers:
                waker.poke()
            return new

    def cancel(self, job_id: str) -> Job:
        checks.check_text("job id", job_id)
        now = self._clock.now()
        with self._lock:
            return self._put(lifecycle.cancel(self._require(job_id), now))

    def _put(self, new: Job) -> Job:
        """Store a changed job; a change of state must be one ``TRANSITIONS`` allows. A
        pipeline step that ends hands off to its downstreams in the same step."""
        old = self._jobs[new.id]
        if new.state is not old.state:
            check_transition(new.id, old.state, new.state)
            counted = stats.ending(old.state, new.state, new.tries >= old.tries)
            if counted is not None:  # the per-minute series, counted as the change is made
                stats.count(self._counters, self._clock.now(), new.queue, counted)
        self._jobs[new.id] = new
        if self._steps and new.id in self._steps and ends(old, new):
            self._hand_off(new.id)
        return new

    def _put_step(self, new: Job) -> Job:
        return self._put(new)

    def _count_skip(self, queue: str, now: float) -> None:
        """A waiting step skipped by its hand-off (set without :meth:`_put`): cancelled."""
        stats.count(self._counters, now, queue, JobState.CANCELLED.value)

    def _wake_all(self) -> None:
        for waker in self._wakers:
            waker.poke()

    def _check_pool(self, pool: str) -> None:
        if pool not in self._pools:
            raise UnknownPoolError(unknown_pool(pool, self._pools))

    def _require(self, job_id: str) -> Job:
        job = self._jobs.get(job_id)
        if job is None:
            raise JobNotFoundError(no_such_job(job_id))
        return job

    def queue_stats(self) -> list[QueueStat]:
        now = self._clock.now()
        stats: dict[str, list[float]] = {}
        with self._lock:
            for job in self._jobs.values():
                if job.state in TERMINAL:
                    continue  # like the SQL brokers: only queues with live jobs
                row = stats.setdefault(job.queue, [0, 0, 0, 0.0])
                if lifecycle.runnable(job, now):
                    row[0] += 1
                    row[3] = max(row[3], now - job.run_at)
                elif job.state in PENDING:
                    row[1] += 1
                elif job.state in LEASED:
                    row[2] += 1
        return [
            QueueStat(q, int(r[0]), int(r[1]), int(r[2]), float(r[3]))
            for q, r in sorted(stats.items())
        ]

    def pause_queue(self, queue: str) -> bool:
        checks.check_text("queue", queue)
        with self._lock:
            if queue in self._paused:
                return False
            self._paused.add(queue)
            return True

    def resume_queue(self, queue: str) -> bool:
        checks.check_text("queue", queue)
        with self._lock:
            if queue not in self._paused:
                return False
            self._paused.discard(queue)
            for waker in self._wakers:
                waker.poke()
            return True

    def paused_queues(self) -> frozenset[str]:
        with self._lock:
            return frozenset(self._paused)

    def report_worker(self, report: WorkerReport) -> None:
        check_report(report)
        with self._lock:
            self._workers[report.id] = WorkerRecord(report, self._clock.now())

    def list_workers(self) -> list[WorkerRecord]:
        with self._lock:
            return [self._workers[k] for k in sorted(self._workers)]

    def prune_workers(self, older_than: float) -> int:
        with self._lock:
            doomed = [k for k, r in self._workers.items() if r.seen_at < older_than]
            for key in doomed:
                del self._workers[key]
        return len(doomed)

    def report_autoscaler(self, report: AutoscalerReport) -> None:
        autoscalers.check_report(report)
        with self._lock:
            self._autoscalers[report.name] = AutoscalerRecord(report, self._clock.now())

    def list_autoscalers(self) -> list[AutoscalerRecord]:
        with self._lock:
            return [self._autoscalers[k] for k in sorted(self._autoscalers)]

    def prune_autoscalers(self, older_than: float) -> int:
        with self._lock:
            doomed = [k for k, r in self._autoscalers.items() if r.updated_at < older_than]
            for key in doomed:
                del self._autoscalers[key]
        return len(doomed)

    def pool_stats(self) -> list[PoolStat]:
        now = self._clock.now()
        with self._lock:
            free = self._admission(now, 0).pool_free
            return [PoolStat(n, s, s - free[n]) for n, s in sorted(self._pools.items())]

    def count_by_state(self) -> dict[tuple[str, JobState], int]:
        counts: dict[tuple[str, JobState], int] = {}
        with self._lock:
            for job in self._jobs.values():
                key = (job.queue, job.state)
                counts[key] = counts.get(key, 0) + 1
        return counts

    def prune(self, older_than: float, limit: int | None = None) -> int:
        limit = check_prune_limit(limit)
        with self._lock:
            doomed = [
                j.id
                for j in self._jobs.values()
                if j.finished_at is not None and j.finished_at < older_than and j.state in TERMINAL
            ][:limit]
            for job_id in doomed:
                job = self._jobs.pop(job_id)
                self._order.pop(job_id, None)
                if job.idempotency_key and self._keys.get(job.idempotency_key) == job_id:
                    del self._keys[job.idempotency_key]
            stats.forget(self._counters, older_than)
        return len(doomed)

    # schedules -----------------------------------------------------------------------
    def fire_schedule(self, schedule: str, tick: float, jobs: Sequence[NewJob]) -> list[Job] | None:
        tick = check_fire(schedule, tick, jobs)
        with self._lock:  # re-entrant: enqueue takes it again
            stored = self._schedules.get(schedule)
            if stored is not None and stored.last_tick >= tick:
                return None
            for new in jobs:  # all or nothing: checked before the tick is recorded
                if new.pool not in self._pools:
                    raise UnknownPoolError(unknown_pool(new.pool, self._pools))
            self._schedules[schedule] = ScheduleState(schedule, tick, self._clock.now())
            return self.enqueue(jobs) if jobs else []

    def schedule_states(self) -> list[ScheduleState]:
        with self._lock:
            return [self._schedules[name] for name in sorted(self._schedules)]
