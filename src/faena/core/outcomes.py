"""What becomes of a job after an attempt ends: pure decisions, no I/O."""

from __future__ import annotations

import random
import traceback as tb

from faena.core.job import ErrorInfo, Job, Outcome
from faena.core.retry import RetryPolicy
from faena.core.states import JobState

MAX_TRACEBACK_CHARS = 16_000


def error_info(exc: BaseException, *, type_name: str | None = None) -> ErrorInfo:
    text = "".join(tb.format_exception(exc))
    if len(text) > MAX_TRACEBACK_CHARS:
        text = "...\n" + text[-MAX_TRACEBACK_CHARS:]
    return ErrorInfo(type_name or type(exc).__name__, str(exc), text)


def after_failure(
    job: Job,
    error: ErrorInfo,
    *,
    retryable: bool,
    policy: RetryPolicy,
    now: float,
    rng: random.Random | None = None,
) -> Outcome:
    """Retry with backoff while attempts are left and the error is retryable, else dead."""
    if retryable and job.tries < job.max_attempts:
        delay = policy.delay(job.tries, rng)
        return Outcome(job.id, job.attempt, JobState.FAILED, error=error, retry_at=now + delay)
    return Outcome(job.id, job.attempt, JobState.DEAD, error=error)


def success(job: Job, result_json: str) -> Outcome:
    return Outcome(job.id, job.attempt, JobState.SUCCEEDED, result_json=result_json)


def cancelled(job: Job) -> Outcome:
    return Outcome(job.id, job.attempt, JobState.CANCELLED)


def decide(
    job: Job,
    *,
    result_json: str | None,
    error: ErrorInfo | None,
    retryable: bool,
    cancelled: bool,
    policy: RetryPolicy | None,
    now: float,
    rng: random.Random | None = None,
) -> Outcome:
    """The outcome of an attempt that ended: cancelled, succeeded (``null`` if it returned
    nothing), retried after a backoff or dead. ``policy`` None (an unknown task, or a task
    without retries): a failure is dead."""
    if cancelled:
        return Outcome(job.id, job.attempt, JobState.CANCELLED)
    if error is None:
        return Outcome(job.id, job.attempt, JobState.SUCCEEDED, result_json=result_json or "null")
    if policy is None:
        return Outcome(job.id, job.attempt, JobState.DEAD, error=error)
    return after_failure(job, error, retryable=retryable, policy=policy, now=now, rng=rng)
