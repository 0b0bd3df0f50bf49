"""Running one job's function and turning what happened into a :class:`RunResult`.

Shared by the thread, async and process executors.
"""

from __future__ import annotations

import time
from typing import Any

from faena.context import set_current_job
from faena.core import payload
from faena.core.job import ErrorInfo, Job
from faena.core.middleware import NO_MIDDLEWARE, Chain
from faena.core.outcomes import error_info
from faena.core.records import call_args
from faena.errors import CorruptJobError, PayloadError
from faena.task import Task
from faena.worker.results import RunResult


class JobInterrupted(BaseException):
    """Raised inside a job's thread to stop it (timeout or cancel).

    A ``BaseException`` so that a job's ``except Exception`` does not swallow it.
    """

    def __init__(self, reason: str = "interrupted") -> None:
        super().__init__(reason)
        self.reason = reason  # the executor that raised it knows the real reason


def decode_call(job: Job) -> tuple[list[Any], dict[str, Any]]:
    """The job's arguments; a stored text that is not JSON raises :class:`CorruptJobError`,
    which makes the job dead at once (never retried)."""
    return call_args(job)


def result_from_value(job: Job, task: Task[Any, Any], value: Any, started: float) -> RunResult:
    duration = time.perf_counter() - started
    if value is None:
        return RunResult(job, duration, result_json="null")
    try:
        text = payload.encode("result", value)
    except PayloadError as exc:
        return RunResult(job, duration, error=error_info(exc), retryable=False)
    return RunResult(job, duration, result_json=text)


def result_from_error(
    job: Job, task: Task[Any, Any] | None, exc: BaseException, started: float
) -> RunResult:
    duration = time.perf_counter() - started
    if isinstance(exc, JobInterrupted):
        if exc.reason == "cancelled":
            return RunResult(job, duration, cancelled=True)
        return RunResult(job, duration, error=timeout_error(job), timed_out=True)
    corrupt = isinstance(exc, CorruptJobError)
    retryable = task is not None and not corrupt and task.options.retries_on(exc)
    return RunResult(job, duration, error=error_info(exc), retryable=retryable)


def timeout_error(job: Job) -> ErrorInfo:
    return ErrorInfo(
        "TimeoutError",
        f"job {job.id} ({job.task}) ran past its timeout of {job.timeout} s and was stopped",
    )


def run_sync(job: Job, task: Task[Any, Any], middleware: Chain = NO_MIDDLEWARE) -> RunResult:
    """Run ``job``'s function, wrapped by the ``around_execute`` of ``middleware``."""
    started = time.perf_counter()
    set_current_job(job)
    try:
        args, kwargs = decode_call(job)
        if middleware.has("around_execute"):
            value = middleware.execute(job, lambda: task.fn(*args, **kwargs))
        else:
            value = task.fn(*args, **kwargs)
    except BaseException as exc:
        return result_from_error(job, task, exc, started)
    finally:
        set_current_job(None)
    return result_from_value(job, task, value, started)
