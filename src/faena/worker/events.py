"""What a worker tells about itself and its jobs: one event on the app's bus for each thing
that happened, with the fields DESIGN section 3 names (logs and metrics are built on them)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from faena.brokers.protocol import Reaped
from faena.core import events as ev
from faena.core.clock import Clock
from faena.core.job import Job, Outcome
from faena.core.states import JobState
from faena.worker.results import RunResult


class WorkerEvents:
    def __init__(self, bus: ev.EventBus, clock: Clock, worker: str) -> None:
        self.bus = bus
        self.clock = clock
        self.worker = worker

    def emit(self, name: str, job: Job | None = None, **fields: Any) -> None:
        if job is None:
            data: dict[str, Any] = {"worker": self.worker, **fields}
        else:
            data = {
                "worker": self.worker,
                "job_id": job.id,
                "task": job.task,
                "queue": job.queue,
                "pool": job.pool,
                "attempt": job.attempt,
                **fields,
            }
        self.bus.publish(ev.Event(name, self.clock.now(), data))

    def reported(self, done: Sequence[tuple[RunResult, Outcome]], accepted: Sequence[bool]) -> None:
        """Attempts whose outcome the broker was sent; ``accepted`` says which it took (a
        refused one was a stale attempt: the lease was lost)."""
        for (r, o), ok in zip(done, accepted, strict=True):
            job = r.job
            ms = round(r.duration * 1000, 3)
            if not ok:
                self.emit(ev.JOB_LEASE_LOST, job, status="lease_lost", duration_ms=ms)
            elif o.state is JobState.SUCCEEDED:
                self.emit(ev.JOB_SUCCEEDED, job, status="succeeded", duration_ms=ms)
            elif o.state is JobState.CANCELLED:
                self.emit(ev.JOB_CANCELLED, job, status="cancelled", duration_ms=ms)
            else:
                self._failed(r, o, ms)

    def _failed(self, r: RunResult, o: Outcome, ms: float) -> None:
        assert o.error is not None
        job = r.job
        retry_in = None if o.retry_at is None else round(o.retry_at - self.clock.now(), 3)
        self.emit(
            ev.JOB_TIMEOUT if r.timed_out else ev.JOB_FAILED,
            job,
            status="failed",
            duration_ms=ms,
            error_type=o.error.type,
            error_message=o.error.message,
            traceback=o.error.traceback,
            will_retry=o.state is JobState.FAILED,
            retry_in_seconds=retry_in,
            retry_count=job.tries - 1,
        )
        if o.state is JobState.DEAD:
            self._dead(job, o.error.type, o.error.message)

    def reaped(self, reaped: Sequence[Reaped]) -> None:
        """Jobs whose lease expired (their worker was lost), and what became of them."""
        for r in reaped:
            status = r.new_state.value
            self.emit(ev.LEASE_EXPIRED, r.job, status=status, previous_worker=r.job.worker)
            if r.new_state is JobState.DEAD and r.job.error is not None:
                self._dead(r.job, r.job.error.type, r.job.error.message)

    def _dead(self, job: Job, error_type: str, error_message: str) -> None:
        # dead with attempts left: its error is one that is never retried (an unknown task,
        # an exception outside retry_on), not "no attempts left"
        reason = "no_attempts_left" if job.tries >= job.max_attempts else "not_retryable"
        self.emit(
            ev.JOB_DEAD,
            job,
            status="dead",
            error_type=error_type,
            error_message=error_message,
            retry_count=job.tries - 1,
            max_attempts=job.max_attempts,
            reason=reason,
        )
