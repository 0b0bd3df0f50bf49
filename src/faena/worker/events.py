"""What a worker tells about itself and its jobs: one event on the app's bus for each thing
that happened, with the fields DESIGN section 3 names (logs and metrics are built on them).

The events of a job's start and end are published by a middleware, :class:`JobEvents`, the
outermost of the worker's chain: a job's ``job.claimed`` line comes before every other
middleware's ``before_execute``, its end line after every ``after_execute``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from faena.brokers.protocol import Reaped
from faena.core import events as ev
from faena.core import outcomes
from faena.core.clock import Clock
from faena.core.job import Job, Outcome
from faena.core.middleware import Attempt, Chain, HookFailure, Middleware
from faena.core.states import JobState
from faena.worker.results import RunResult


class WorkerEvents:
    def __init__(self, bus: ev.EventBus, clock: Clock, worker: str) -> None:
        self.bus = bus
        self.clock = clock
        self.worker = worker
        #: the worker's middleware, told of every reported attempt (by default only the
        #: events' own)
        self.middleware = Chain([JobEvents(self)])

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
        refused one was a stale attempt: the lease was lost). Each reaches the middleware's
        ``after_execute``; :class:`JobEvents` publishes its event."""
        chain = self.middleware
        for (r, o), ok in zip(done, accepted, strict=True):
            chain.after_execute(Attempt(r.job, o, r.duration, ok, r.timed_out))

    def attempt_ended(self, attempt: Attempt) -> None:
        job, o = attempt.job, attempt.outcome
        ms = round(attempt.duration * 1000, 3)
        if not attempt.accepted:
            self.emit(ev.JOB_LEASE_LOST, job, status="lease_lost", duration_ms=ms)
        elif o.state is JobState.SUCCEEDED:
            self.emit(ev.JOB_SUCCEEDED, job, status="succeeded", duration_ms=ms)
        elif o.state is JobState.CANCELLED:
            self.emit(ev.JOB_CANCELLED, job, status="cancelled", duration_ms=ms)
        else:
            self._failed(attempt, ms)

    def middleware_failed(self, failure: HookFailure) -> None:
        """A middleware hook raised (see :class:`~faena.core.middleware.Chain`)."""
        exc = failure.error
        self.emit(
            ev.WORKER_MIDDLEWARE_ERROR,
            failure.job,
            status="middleware_error",
            middleware=failure.middleware,
            hook=failure.hook,
            error_type=type(exc).__name__,
            error_message=str(exc),
            traceback=outcomes.error_info(exc).traceback,
        )

    def _failed(self, attempt: Attempt, ms: float) -> None:
        o, job = attempt.outcome, attempt.job
        assert o.error is not None
        retry_in = None if o.retry_at is None else round(o.retry_at - self.clock.now(), 3)
        self.emit(
            ev.JOB_TIMEOUT if attempt.timed_out else ev.JOB_FAILED,
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


class JobEvents(Middleware):
    """The worker's first middleware: ``job.claimed`` as a job is handed to its executor
    (when anyone listens), and the event of each reported attempt's end."""

    def __init__(self, events: WorkerEvents) -> None:
        self.events = events
        self.publish_claimed = True  # the worker skips building it when nobody listens

    def before_execute(self, job: Job) -> None:
        if self.publish_claimed:
            self.events.emit(ev.JOB_CLAIMED, job, status="running")

    def after_execute(self, attempt: Attempt) -> None:
        self.events.attempt_ended(attempt)
