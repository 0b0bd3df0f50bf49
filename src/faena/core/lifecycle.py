"""Pure state changes of one job record, and the rules of when an operator may make them.

The one owner of the job rules: the memory broker applies these functions directly, the SQL
brokers' Python sides call the preconditions (:func:`check_retry`, :func:`cancel`) before
writing, and the SQL and Lua texts get their state sets filled in from :mod:`faena.core.states`
(:mod:`faena.brokers.literals`). The contract suite holds every backend to the same results."""

from __future__ import annotations

from faena.core.attempts import AttemptOutcome, AttemptRecord, appended
from faena.core.job import ErrorInfo, Job, NewJob, Outcome
from faena.core.states import LEASED, PENDING, RETRYABLE, JobState, in_order
from faena.errors import InvalidTransitionError

WORKER_LOST = "WorkerLost"

#: how an attempt ended, by the state its outcome gives the job
_ENDS = {
    JobState.SUCCEEDED: AttemptOutcome.SUCCEEDED,
    JobState.FAILED: AttemptOutcome.FAILED,
    JobState.DEAD: AttemptOutcome.DEAD,
    JobState.CANCELLED: AttemptOutcome.CANCELLED,
}


def create(new: NewJob, now: float) -> Job:
    run_at = now if new.run_at is None else new.run_at
    # positional, in Job's field order (a bulk enqueue makes one per job: keywords cost more)
    return Job(
        new.id,
        new.task,
        new.queue,
        new.args_json,
        new.kwargs_json,
        JobState.SCHEDULED if run_at > now else JobState.QUEUED,  # state
        new.priority,
        new.pool,
        new.pool_slots,
        0,  # attempt
        0,  # tries
        new.max_attempts,
        new.timeout,
        new.idempotency_key,
        now,  # enqueued_at
        run_at,
    )


def runnable(job: Job, now: float) -> bool:
    return job.state in PENDING and job.run_at <= now


def claim(job: Job, worker: str, now: float, lease_seconds: float) -> Job:
    return job.evolve(
        state=JobState.RUNNING,
        attempt=job.attempt + 1,
        tries=job.tries + 1,
        worker=worker,
        started_at=now,
        lease_expires_at=now + lease_seconds,
    )


def holds(job: Job, job_id: str, attempt: int) -> bool:
    """Whether a write for ``(job_id, attempt)`` may change ``job`` (the fence)."""
    return job.id == job_id and job.attempt == attempt and job.state is JobState.RUNNING


def attempt_record(
    job: Job, outcome: AttemptOutcome, now: float, error: ErrorInfo | None = None
) -> AttemptRecord:
    """The record of ``job``'s current (leased) attempt ending now as ``outcome``."""
    if error is None:
        return AttemptRecord(job.attempt, job.worker, job.started_at, now, outcome)
    return AttemptRecord(
        job.attempt,
        job.worker,
        job.started_at,
        now,
        outcome,
        error.type,
        error.message,
        error.traceback,
    )


def with_row_attempt(job: Job, history: tuple[AttemptRecord, ...]) -> Job:
    """``job`` with ``history``, and its succeeded last attempt read off the row when the
    history does not hold it: a store that writes no record for a success (PostgreSQL: its
    finish stays as cheap as before the history existed) still shows the whole story. The
    row keeps that attempt's worker, start and finish (a success ends the job)."""
    ended = job.state is JobState.SUCCEEDED and job.started_at is not None
    if (
        ended
        and job.finished_at is not None
        and (not history or history[-1].attempt != job.attempt)
    ):
        record = AttemptRecord(
            job.attempt, job.worker, job.started_at, job.finished_at, AttemptOutcome.SUCCEEDED
        )
        history = appended(history, record)
    return job.evolve(attempts=history)


def recorded(job: Job, outcome: AttemptOutcome, now: float, error: ErrorInfo | None) -> Job:
    """``job`` (still as leased) with its current attempt's end added to its history."""
    return job.evolve(attempts=appended(job.attempts, attempt_record(job, outcome, now, error)))


def finish(job: Job, outcome: Outcome, now: float) -> Job:
    state = outcome.state
    if state in _ENDS:  # any other state is refused by the caller's transition check
        job = recorded(job, _ENDS[state], now, outcome.error)
    if outcome.max_attempts is not None:
        job = job.evolve(max_attempts=outcome.max_attempts)
    if state is JobState.FAILED:
        return job.evolve(
            state=JobState.FAILED,
            error=outcome.error,
            run_at=now if outcome.retry_at is None else outcome.retry_at,
            lease_expires_at=None,
            worker=None,
        )
    return job.evolve(
        state=state,
        result_json=outcome.result_json,
        error=outcome.error if outcome.error is not None else job.error,
        finished_at=now,
        lease_expires_at=None,
    )


def release(job: Job, now: float) -> Job:
    """Back in line at once with the attempt given back; ``run_at`` and order are kept."""
    job = recorded(job, AttemptOutcome.RELEASED, now, None)
    return job.evolve(
        state=JobState.QUEUED, tries=max(job.tries - 1, 0), lease_expires_at=None, worker=None
    )


def expire(job: Job, now: float) -> Job:
    """A lease ran out: the worker is presumed dead, and the attempt is counted."""
    job = recorded(job, AttemptOutcome.LOST, now, lost_error(job))
    if job.cancel_requested:
        return job.evolve(state=JobState.CANCELLED, finished_at=now, lease_expires_at=None)
    if job.tries >= job.max_attempts:
        return job.evolve(
            state=JobState.DEAD,
            finished_at=now,
            lease_expires_at=None,
            error=lost_error(job),
        )
    return job.evolve(state=JobState.QUEUED, lease_expires_at=None, worker=None)


def lost_error(job: Job) -> ErrorInfo:
    return ErrorInfo(
        WORKER_LOST,
        f"worker {job.worker} stopped renewing its lease during attempt {job.attempt} "
        f"of {job.max_attempts} (killed, out of memory, or lost its broker)",
    )


def retry_refused(job: Job) -> str:
    allowed = " or ".join(s.value for s in in_order(RETRYABLE))
    return (
        f"job {job.id} is {job.state.value}; only {allowed} jobs can be retried by hand "
        f"(a failed job retries by itself when its backoff ends)"
    )


def cancel_refused(job: Job) -> str:
    words = [
        s.value + (" (awaiting retry)" if s is JobState.FAILED else "") for s in in_order(PENDING)
    ]
    words += [s.value for s in in_order(LEASED)]
    allowed = ", ".join(words[:-1]) + " and " + words[-1]
    return f"job {job.id} is {job.state.value} and cannot be cancelled; only {allowed} jobs can"


def check_retry(job: Job) -> None:
    """Refuse (:class:`InvalidTransitionError`) a retry by hand of a job not ``RETRYABLE``."""
    if job.state not in RETRYABLE:
        raise InvalidTransitionError(retry_refused(job))


def cancel(job: Job, now: float) -> Job:
    """A cancel by an operator: a pending job ends ``cancelled`` now; a leased (running) one
    is asked to stop (``cancel_requested``, seen by its worker's next heartbeat) and ends
    ``cancelled`` when the worker says so or its lease runs out (:func:`expire`); any other
    is refused (:class:`InvalidTransitionError`). A backend writes what changed: ``state`` and
    ``finished_at``, or only ``cancel_requested``."""
    if job.state in PENDING:
        return job.evolve(state=JobState.CANCELLED, finished_at=now)
    if job.state in LEASED:
        return job.evolve(cancel_requested=True)
    raise InvalidTransitionError(cancel_refused(job))


def manual_retry(job: Job, now: float) -> Job:
    """A retry by hand (after :func:`check_retry`): queued now, with a fresh budget."""
    return job.evolve(
        state=JobState.QUEUED,
        tries=0,
        run_at=now,
        finished_at=None,
        result_json=None,
        cancel_requested=False,
        lease_expires_at=None,
        worker=None,
    )
