"""A pure model of the broker protocol (src/faena/brokers/protocol.py) for the state machine
of test_state_machine.py: jobs as plain records, the rules written out again from the
protocol's text rather than taken from faena.core.lifecycle, so that a rule the code gets
wrong everywhere shows up as well as one backend that differs from the others.

It keeps what every backend's ``get``/``list_jobs`` shows of a job (state, fencing token,
tries, budget, lease, result, error type, cancel flag); no I/O, time is passed in.
"""

from __future__ import annotations

from dataclasses import dataclass, field

PENDING = ("scheduled", "queued", "failed")
HOLDS_KEY = ("scheduled", "queued", "running", "succeeded", "failed")
RETRYABLE = ("dead", "cancelled")


class Refused(Exception):
    """The operation must be refused (the backend raises InvalidTransitionError)."""


@dataclass
class MJob:
    id: str
    queue: str
    pool: str
    slots: int
    priority: int
    seq: int
    max_attempts: int
    key: str | None
    state: str
    run_at: float
    attempt: int = 0
    tries: int = 0
    lease_expires_at: float | None = None
    worker: str | None = None
    result_json: str | None = None
    error_type: str | None = None
    cancel_requested: bool = False


@dataclass
class MSpec:
    """What one enqueued job asks for (``run_at`` absolute, ``None``: now)."""

    id: str
    queue: str
    pool: str = "default_pool"
    slots: int = 1
    priority: int = 0
    max_attempts: int = 4
    key: str | None = None
    run_at: float | None = None


@dataclass
class MClaim:
    claimed: list[str]
    reaped: dict[str, str]  # job id -> its new state
    left: bool  # a runnable job of the queues was left unclaimed


@dataclass
class Model:
    pools: dict[str, int]
    parallelism: int | None = None
    jobs: dict[str, MJob] = field(default_factory=dict)
    seq: int = 0

    # producers ---------------------------------------------------------------------
    def enqueue(self, specs: list[MSpec], now: float) -> list[str]:
        """The ids returned; ``KeyError`` (nothing written) if a pool is unknown."""
        for spec in specs:
            if spec.pool not in self.pools:
                raise KeyError(spec.pool)
        out = []
        for spec in specs:
            held = self.jobs.get(spec.id) or self._key_holder(spec.key)
            if held is not None:
                out.append(held.id)
                continue
            run_at = now if spec.run_at is None else spec.run_at
            self.seq += 1
            self.jobs[spec.id] = MJob(
                spec.id,
                spec.queue,
                spec.pool,
                spec.slots,
                spec.priority,
                self.seq,
                spec.max_attempts,
                spec.key,
                "scheduled" if run_at > now else "queued",
                run_at,
            )
            out.append(spec.id)
        return out

    def _key_holder(self, key: str | None, other_than: str | None = None) -> MJob | None:
        if key is None:
            return None
        for job in self.jobs.values():
            if job.key == key and job.state in HOLDS_KEY and job.id != other_than:
                return job
        return None

    # workers -----------------------------------------------------------------------
    def reap(self, now: float) -> dict[str, str]:
        out = {}
        for job in self.jobs.values():
            if job.state == "running" and (job.lease_expires_at or 0) <= now:
                self._expire(job)
                out[job.id] = job.state
        return out

    def _expire(self, job: MJob) -> None:
        job.lease_expires_at = None
        if job.cancel_requested:
            job.state = "cancelled"
        elif job.tries >= job.max_attempts:
            job.state, job.error_type = "dead", "WorkerLost"
        else:
            job.state, job.worker = "queued", None

    def claim(self, worker: str, queues: list[str], limit: int, lease: float, now: float) -> MClaim:
        reaped = self.reap(now)
        ready = sorted(
            (
                j
                for j in self.jobs.values()
                if j.queue in queues and j.state in PENDING and j.run_at <= now
            ),
            key=lambda j: (-j.priority, j.seq),
        )
        free = {name: size - self.used(name, now) for name, size in self.pools.items()}
        cap = None if self.parallelism is None else self.parallelism - self.running(now)
        claimed: list[str] = []
        for job in ready:
            if len(claimed) >= limit or (cap is not None and cap <= 0):
                break
            if job.slots > free[job.pool]:
                continue
            free[job.pool] -= job.slots
            cap = None if cap is None else cap - 1
            claimed.append(job.id)
        for job_id in claimed:
            job = self.jobs[job_id]
            job.state, job.worker = "running", worker
            job.attempt += 1
            job.tries += 1
            job.lease_expires_at = now + lease
        return MClaim(claimed, reaped, len(ready) > len(claimed))

    def _live(self, job: MJob, now: float) -> bool:
        """Whether ``job`` holds a lease that has not run out (only those take slots)."""
        return job.state == "running" and (job.lease_expires_at or 0) > now

    def used(self, pool: str, now: float) -> int:
        return sum(j.slots for j in self.jobs.values() if j.pool == pool and self._live(j, now))

    def running(self, now: float) -> int:
        return sum(1 for j in self.jobs.values() if self._live(j, now))

    def holds(self, job_id: str, attempt: int) -> MJob | None:
        job = self.jobs.get(job_id)
        if job is None or job.attempt != attempt or job.state != "running":
            return None
        return job

    def heartbeat(
        self, leases: list[tuple[str, int]], lease: float, now: float
    ) -> tuple[set[str], set[str]]:
        lost, cancel = set(), set()
        for job_id, attempt in leases:
            job = self.holds(job_id, attempt)
            if job is None:
                lost.add(job_id)
                continue
            job.lease_expires_at = now + lease
            if job.cancel_requested:
                cancel.add(job_id)
        return lost, cancel

    def finish(
        self,
        outcomes: list[tuple[str, int, str, str | None, float | None, str | None]],
        now: float,
    ) -> list[bool]:
        """Each outcome: (job id, attempt, state, error type, retry at, result)."""
        done = []
        for job_id, attempt, state, etype, retry_at, result in outcomes:
            job = self.holds(job_id, attempt)
            if job is None:
                done.append(False)
                continue
            job.lease_expires_at = None
            if state == "failed":
                job.state, job.error_type, job.worker = "failed", etype, None
                job.run_at = now if retry_at is None else retry_at
            else:
                job.state = state
                job.result_json = result
                job.error_type = etype if etype is not None else job.error_type
            done.append(True)
        return done

    def release(self, leases: list[tuple[str, int]]) -> list[bool]:
        done = []
        for job_id, attempt in leases:
            job = self.holds(job_id, attempt)
            if job is None:
                done.append(False)
                continue
            job.state, job.worker, job.lease_expires_at = "queued", None, None
            job.tries = max(job.tries - 1, 0)
            done.append(True)
        return done

    # operators ---------------------------------------------------------------------
    def retry(self, job_id: str, now: float) -> None:
        job = self.jobs[job_id]
        if job.state not in RETRYABLE:
            raise Refused(job.state)
        if self._key_holder(job.key, other_than=job.id) is not None:
            raise Refused("key")
        job.state, job.tries, job.run_at = "queued", 0, now
        job.result_json, job.cancel_requested = None, False
        job.lease_expires_at, job.worker = None, None

    def cancel(self, job_id: str) -> None:
        job = self.jobs[job_id]
        if job.state in PENDING:
            job.state = "cancelled"
        elif job.state == "running":
            job.cancel_requested = True
        else:
            raise Refused(job.state)
