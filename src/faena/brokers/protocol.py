"""The broker contract. Every backend implements it; ``tests/contract`` proves it.

Guarantees each implementation must keep (DESIGN section 2):

* ``enqueue`` returns only once the jobs are durable in the store (as durable as the store is
  configured to be), all of one call in one atomic step; a job with an ``idempotency_key``
  that is already taken by a pending, running, failed-awaiting-retry or succeeded job is not
  created again: the existing job is returned in its place.
* ``claim`` is one atomic step: it re-queues (or kills) jobs whose lease expired, then picks
  runnable jobs of the given queues by ``priority`` (high first), then enqueue order, and
  admits each only if its pool has ``pool_slots`` free and the global parallelism cap has room.
  Slots count only jobs that are ``running`` with a live lease. Each claim increments
  ``attempt`` (the fencing token) and ``tries``.
* ``heartbeat``, ``finish`` and ``release`` are conditional on ``(job id, attempt)`` and on the
  job still being ``running``: a write for a superseded attempt changes nothing and reports
  ``False``.
* ``release`` gives the attempt back (``tries - 1``) and makes the job runnable at once,
  keeping its place in line.
* A paused queue (``pause_queue``) is skipped by ``claim`` and ``next_run_at`` in the same
  atomic step that reads it; its running jobs keep their leases and finish as usual. The
  pause is kept in the store, so it outlasts restarts of workers and of the broker.
* A job whose lease expired becomes ``queued`` again (keeping its place) if ``tries`` is
  below ``max_attempts``, else ``dead`` with ``error_type`` ``WorkerLost``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from faena.core.job import Job, Lease, NewJob, Outcome
from faena.core.runs import NewRun, RunRecord
from faena.core.search import JobPage, JobSearch
from faena.core.states import JobState
from faena.core.stats import FINISHED_STATES, JobStats, MinuteCount, Percentiles

__all__ = [
    "FINISHED_STATES",
    "JobPage",
    "JobSearch",
    "JobStats",
    "MinuteCount",
    "Percentiles",
]


@dataclass(frozen=True, slots=True)
class Reaped:
    """A job whose lease expired, and what became of it."""

    job: Job
    new_state: JobState  # queued or dead


@dataclass(frozen=True, slots=True)
class ClaimResult:
    jobs: list[Job] = field(default_factory=list)
    reaped: list[Reaped] = field(default_factory=list)
    #: runnable jobs were left because a pool or the parallelism cap was full: capacity may
    #: come back without a wake-up, so the worker polls briefly instead of sleeping long
    saturated: bool = False


@dataclass(frozen=True, slots=True)
class HeartbeatResult:
    lost: frozenset[str] = frozenset()  # job ids whose lease this worker no longer holds
    cancel: frozenset[str] = frozenset()  # job ids a user asked to cancel


@dataclass(frozen=True, slots=True)
class QueueStat:
    queue: str
    waiting: int  # runnable now: queued, or scheduled/failed whose time has come
    scheduled: int  # waiting for a future time (delayed or retry backoff)
    running: int
    oldest_age: float  # seconds the longest-waiting runnable job has waited; 0 if none


#: what a worker reports of itself; ``lost`` is never reported: it is read off a report
#: that is older than its ``lost_after`` (see :meth:`WorkerRecord.state_at`)
WORKER_STATES = ("running", "draining", "stopped")


@dataclass(frozen=True, slots=True)
class WorkerReport:
    """One worker process, as it registers and then reports itself at each heartbeat."""

    id: str
    host: str
    pid: int
    queues: tuple[str, ...]
    concurrency: int
    version: str
    started_at: float
    state: str = "running"  # one of WORKER_STATES
    #: seconds without a report after which the worker counts as lost (a few heartbeats)
    lost_after: float = 60.0


@dataclass(frozen=True, slots=True)
class WorkerRecord:
    """A worker's last report and when the store received it (the broker's clock)."""

    report: WorkerReport
    seen_at: float

    def state_at(self, now: float) -> str:
        """The reported state, or ``lost`` if a worker that did not stop fell silent."""
        if self.report.state != "stopped" and now - self.seen_at > self.report.lost_after:
            return "lost"
        return self.report.state


@dataclass(frozen=True, slots=True)
class AutoscalerMetric:
    """One metric an autoscaler read at its last sync: ``kind/name``, its value and its
    target as the HPA writes them (``37``, ``250m``, ``80%``), the replicas it proposed, or
    the error that kept it from proposing."""

    metric: str
    current: str | None
    target: str | None
    proposal: int | None
    error: str | None = None


@dataclass(frozen=True, slots=True)
class AutoscalerReport:
    """An autoscaler's state after a sync (``faena autoscale``, ``faena up``): the HPA's
    desired and the workers actually running, its bounds, the metrics it used and why the
    count is what it is. ``reason`` is the HPA's (``DesiredWithinRange``, ``ScaleUpLimit``,
    ``TooManyReplicas``...); ``limited_by`` names the rule that held the count back (a
    behaviour policy, a stabilization window, min/max replicas, the tolerance) when one did.
    """

    name: str  # the HPA's scaleTargetRef name (the supervisor's pool)
    host: str
    pid: int
    desired: int
    current: int  # worker processes running and not draining
    min_replicas: int
    max_replicas: int
    reason: str
    metric_desired: int | None = None
    limited_by: str | None = None
    metrics: tuple[AutoscalerMetric, ...] = ()
    last_scale_at: float | None = None  # when it last changed the count (POSIX time)
    #: seconds without a report after which it is shown as stale (a few sync periods)
    stale_after: float = 60.0


@dataclass(frozen=True, slots=True)
class AutoscalerRecord:
    """An autoscaler's last report and when the store received it (the broker's clock)."""

    report: AutoscalerReport
    updated_at: float

    def stale_at(self, now: float) -> bool:
        """Whether its reports stopped (the autoscaler is gone, or its broker calls fail)."""
        return now - self.updated_at > self.report.stale_after


@dataclass(frozen=True, slots=True)
class ScheduleState:
    """What the store keeps of one schedule (``fire_schedule``): the last tick it recorded
    (POSIX seconds) and when, by the broker's clock."""

    name: str
    last_tick: float
    fired_at: float


@dataclass(frozen=True, slots=True)
class PoolStat:
    pool: str
    size: int
    used: int


class Waker(Protocol):
    """Something to wait on until new work may be there."""

    def fileno(self) -> int:
        """A descriptor that turns readable when work may have arrived."""

    def drain(self) -> None:
        """Consume pending wake-ups (call after the descriptor turned readable)."""

    def close(self) -> None: ...


@runtime_checkable
class RetryReporting(Protocol):
    """A broker whose client retries a failed call itself (reconnecting, for a while) tells
    listeners of each retry, so a worker knows of an outage before a call gives up."""

    def add_retry_listener(self, listener: Callable[[BaseException], None]) -> None: ...

    def remove_retry_listener(self, listener: Callable[[BaseException], None]) -> None: ...


class WorkerSource(Protocol):
    """What a worker needs of a broker: claim, keep, finish and give back jobs, and be woken.

    The worker runtime (and an adapter that would run other kinds of work on it) depends on
    this part of the contract only; the operator side (:class:`OperatorStore`) is for the
    CLI, the HTTP API and the metrics.
    """

    #: short backend name: ``memory``, ``sqlite``, ``postgres``, ``redis``
    kind: str
    #: whether calls from several threads run at the same time (each on its own connection):
    #: then a worker's slots call the broker themselves; where calls take turns at one
    #: writer, the worker's main thread makes them, a few jobs at a time
    parallel_calls: bool

    def claim(
        self, worker: str, queues: Sequence[str], limit: int, lease_seconds: float
    ) -> ClaimResult: ...

    def heartbeat(
        self, worker: str, leases: Sequence[Lease], lease_seconds: float
    ) -> HeartbeatResult: ...

    def finish(self, outcomes: Sequence[Outcome]) -> list[bool]:
        """Record the end of attempts; one atomic step; ``False`` for a stale attempt."""

    def finish_and_claim(
        self,
        outcomes: Sequence[Outcome],
        worker: str,
        queues: Sequence[str],
        limit: int,
        lease_seconds: float,
    ) -> tuple[list[bool], ClaimResult]:
        """``finish`` then ``claim``, in one round trip where the backend allows it."""

    def release(self, leases: Sequence[Lease]) -> list[bool]: ...

    def reap(self) -> list[Reaped]: ...

    def waker(self, queues: Sequence[str]) -> Waker: ...

    def next_run_at(self, queues: Sequence[str]) -> float | None:
        """When the earliest delayed job of these queues becomes runnable, if any."""


class OperatorStore(Protocol):
    """What producers and operators need of a broker: set up the store, configure pools and
    the cap, enqueue, and inspect and act on jobs."""

    #: whether several processes may share this broker (the memory one cannot)
    shared_across_processes: bool

    def setup(self) -> None:
        """Create or migrate the store; refuse a store that is not faena's or is newer."""

    def exists(self) -> bool:
        """Whether the store holds faena's data already (``setup`` ran on it), found without
        creating anything: commands that only read or act on jobs refuse a missing store."""

    def close(self) -> None: ...

    # configuration -----------------------------------------------------------------
    def set_pools(self, pools: Mapping[str, int]) -> None:
        """Create or resize pools (sizes given win over stored ones)."""

    def set_parallelism(self, limit: int | None) -> None:
        """Cap on running jobs across all workers; ``None`` removes the cap."""

    def get_parallelism(self) -> int | None: ...

    # producers ---------------------------------------------------------------------
    def enqueue(self, jobs: Sequence[NewJob]) -> list[Job]: ...

    # operators ---------------------------------------------------------------------
    def get(self, job_id: str) -> Job | None: ...

    def job_keys(self, job_ids: Sequence[str]) -> dict[str, int]:
        """The key of each stored job among ``job_ids`` (a job not stored is left out): its
        enqueue sequence, a positive 63-bit integer that never changes, is never given to
        another job and is the same from every process sharing the store (SQLite's rowid,
        PostgreSQL's ``seq``, the score of Redis' ``all`` index, the memory broker's counter).
        Other protocols name jobs by it (Zeebe's int64 job key, :mod:`faena.zeebe`)."""

    def job_by_key(self, key: int) -> Job | None:
        """The stored job whose key (:meth:`job_keys`) is ``key``, or ``None``."""

    def list_jobs(
        self,
        *,
        state: JobState | None = None,
        queue: str | None = None,
        task: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[Job]:
        """Newest first."""

    def search_jobs(
        self, search: JobSearch, *, limit: int = 100, cursor: str | None = None
    ) -> JobPage:
        """Up to ``limit`` (1 to 1000) jobs matching ``search``, newest first, from
        ``cursor`` (a page's ``next_cursor``; ``None``: the newest). Pages are keyed by the
        enqueue sequence (:mod:`faena.core.search`): a job that matches all along is
        returned exactly once however jobs are enqueued or move between pages. A time range
        or a text is checked on the jobs of the other filters' index, at most
        ``search.SCAN_BUDGET`` of them a page (then ``truncated``)."""

    def job_stats(self, *, minutes: int = 60, queue: str | None = None) -> JobStats:
        """Attempt endings per minute (succeeded, retried, dead, cancelled: the series of
        :mod:`faena.core.stats`, counted as they happen by :func:`faena.core.stats.ending`)
        and run / wait time percentiles over the last ``minutes`` (1 to 1440) whole minutes,
        from the store itself (every server replica reads the same numbers); of one queue,
        or all. The counts are counters the store writes with each change of state, in the
        same transaction or script (an outcome fenced out counts nothing), read in
        ``minutes x queues x series``, and deleted by :meth:`prune` with the jobs."""

    def retry(self, job_id: str) -> Job:
        """A ``dead`` or ``cancelled`` job runs again with a fresh budget of attempts."""

    def cancel(self, job_id: str) -> Job:
        """Pending jobs are cancelled at once; running ones are flagged for their worker."""

    def retry_matching(
        self,
        *,
        state: JobState | None = None,
        queue: str | None = None,
        task: str | None = None,
        limit: int = 1000,
    ) -> int:
        """Retry (as :meth:`retry`) up to ``limit`` (1 to 1000) ``dead`` or ``cancelled``
        jobs matching the filters of :meth:`list_jobs`; how many were retried. Jobs ``retry``
        would refuse (an idempotency key a live job holds) are left alone. On SQLite and
        PostgreSQL a batch is one transaction; on memory and Redis each job changes
        atomically, a batch is not one atomic step. Call again until it returns 0
        (:mod:`faena.brokers.bulk`)."""

    def cancel_matching(
        self,
        *,
        state: JobState | None = None,
        queue: str | None = None,
        task: str | None = None,
        limit: int = 1000,
    ) -> int:
        """Cancel (as :meth:`cancel`) up to ``limit`` (1 to 1000) pending or running jobs
        matching the filters: pending ones end now, running ones not flagged yet are
        flagged; how many changed. Atomic as :meth:`retry_matching` is."""

    def queue_stats(self) -> list[QueueStat]: ...

    def pause_queue(self, queue: str) -> bool:
        """Stop claims from ``queue`` until it is resumed (jobs may still be enqueued to it;
        running ones go on). Any queue name may be paused, with jobs or without. ``True`` if
        it was not paused already."""

    def resume_queue(self, queue: str) -> bool:
        """Let ``queue`` be claimed again and wake the workers waiting; ``True`` if it was
        paused."""

    def paused_queues(self) -> frozenset[str]: ...

    # the worker registry -------------------------------------------------------------
    def report_worker(self, report: WorkerReport) -> None:
        """Register a worker or record its latest report (its state, that it is alive): the
        record of ``report.id`` is replaced and stamped with the broker's time."""

    def list_workers(self) -> list[WorkerRecord]:
        """Every worker record kept, by id (see :meth:`WorkerRecord.state_at` for lost ones)."""

    def prune_workers(self, older_than: float) -> int:
        """Delete the records of workers last seen before ``older_than`` (POSIX time)."""

    # the autoscalers' state -----------------------------------------------------------
    def report_autoscaler(self, report: AutoscalerReport) -> None:
        """Record an autoscaler's latest state: the record of ``report.name`` is replaced
        and stamped with the broker's time (one record per autoscaled deployment)."""

    def list_autoscalers(self) -> list[AutoscalerRecord]:
        """Every autoscaler record kept, by name (see :meth:`AutoscalerRecord.stale_at`)."""

    def prune_autoscalers(self, older_than: float) -> int:
        """Delete the records of autoscalers last heard of before ``older_than``."""

    def pool_stats(self) -> list[PoolStat]: ...

    def count_by_state(self) -> dict[tuple[str, JobState], int]:
        """Number of jobs per (queue, state)."""

    def prune(self, older_than: float, limit: int | None = None) -> int:
        """Delete terminal jobs finished before ``older_than`` (POSIX time), at most
        ``limit`` of them (``None``: all; memory, SQLite and PostgreSQL delete them in one
        step, Redis in steps of 1000); how many were deleted. The counters of
        :meth:`job_stats` of the minutes that began before ``older_than`` go too."""

    # schedules ---------------------------------------------------------------------
    def fire_schedule(self, schedule: str, tick: float, jobs: Sequence[NewJob]) -> list[Job] | None:
        """Record ``tick`` as the last tick of ``schedule`` and enqueue ``jobs`` (as
        :meth:`enqueue` does) in one atomic step, only if ``tick`` is newer than the tick
        stored for it (or none is stored): a compare-and-set in the same transaction (Lua
        function) as the insert. Two processes firing the same tick create its jobs once;
        a call that dies part-way leaves both or neither. The jobs created (or the ones
        holding their ids or keys), or ``None`` if the tick was not newer and nothing was
        written. An unknown pool writes nothing, the tick included. ``jobs`` may be empty
        (the tick is recorded alone: a schedule armed)."""

    def schedule_states(self) -> list[ScheduleState]:
        """Every schedule the store has recorded a tick of, by name."""


class PipelineStore(Protocol):
    """Pipeline runs (:mod:`faena.core.runs`, rules in :mod:`faena.core.dependencies`).

    * ``create_run`` inserts the run record and every step's job in one atomic step; a step
      with upstreams waits (``scheduled``, ``run_at`` = ``BLOCKED_AT``). A run whose key is
      taken by a kept run is not created again: the stored one is returned (``created`` is
      ``False``).
    * When a step's job ends (``succeeded``, ``dead``, ``cancelled``: by a finish, a lease
      that ran out, or a cancel), each waiting downstream is released or skipped in the same
      atomic step, exactly once however many upstreams end at the same time.
    """

    def create_run(self, run: NewRun) -> RunRecord: ...

    def get_run(self, run_id: str) -> RunRecord | None: ...

    def list_runs(
        self, *, pipeline: str | None = None, limit: int = 100, offset: int = 0
    ) -> list[RunRecord]:
        """Newest first."""

    def retry_run(self, run_id: str) -> RunRecord:
        """Run the dead and cancelled steps again (``core.dependencies.plan_retry``) and keep
        the others; one atomic step."""

    def cancel_run(self, run_id: str) -> RunRecord:
        """Cancel every live step (downstreams first): pending ones end now, running ones
        are flagged for their workers."""

    def note_run_ended(self, run_id: str, finished_at: float) -> bool:
        """Mark the end of run ``run_id`` at ``finished_at`` (its ``RunRecord.finished_at``)
        as reported, atomically: ``True`` for the first caller only, however many processes
        ask at once, so an end is logged once. A run retried and ended again has a new
        ``finished_at`` and is reported again. ``False`` for a run the store does not hold."""


@runtime_checkable
class Broker(WorkerSource, OperatorStore, PipelineStore, Protocol):
    """The whole contract: every backend implements both sides, and the contract suite
    (``tests/contract``) holds each to it."""
