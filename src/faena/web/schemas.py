"""The ``/api/v1`` bodies as pydantic models: they validate the input and are the OpenAPI
schemas, one definition for both."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue

from faena.core.attempts import MAX_ATTEMPTS_KEPT, AttemptOutcome, AttemptRecord
from faena.core.checks import PRIORITY_MAX, PRIORITY_MIN
from faena.core.job import Job
from faena.core.states import JobState

#: page size of ``GET /api/v1/jobs`` (``limit``): default and most
DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
#: deepest ``offset``: past it, filter instead (``state``, ``queue``, ``task``)
MAX_OFFSET = 100_000
#: the longest identifier accepted (task name, queue, idempotency key)
MAX_NAME = 1000


class EnqueueRequest(BaseModel):
    """A job of a task, by its registered name. Options left out take the task's own (when
    the server imported the app) or the defaults (queue ``default``, priority 0)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    task: str = Field(min_length=1, max_length=MAX_NAME, examples=["myproject.jobs.send_mail"])
    args: list[JsonValue] = Field(default_factory=list, examples=[["ada@example.com"]])
    kwargs: dict[str, JsonValue] = Field(default_factory=dict, examples=[{"urgent": True}])
    queue: str | None = Field(default=None, min_length=1, max_length=64)
    priority: int | None = Field(default=None, ge=PRIORITY_MIN, le=PRIORITY_MAX)
    delay: float | None = Field(
        default=None, ge=0, le=10 * 365 * 86400, allow_inf_nan=False, description="seconds"
    )
    idempotency_key: str | None = Field(default=None, min_length=1, max_length=MAX_NAME)

    def options(self) -> dict[str, Any]:
        given = {
            "queue": self.queue,
            "priority": self.priority,
            "delay": self.delay,
            "idempotency_key": self.idempotency_key,
        }
        return {k: v for k, v in given.items() if v is not None}


class PoolSize(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    size: int = Field(ge=0, le=2**31 - 2, description="slots of the pool")


class JobError(BaseModel):
    type: str
    message: str
    traceback: str | None = None


class AttemptOut(BaseModel):
    attempt: int
    worker: str | None
    started_at: float | None
    finished_at: float
    outcome: AttemptOutcome = Field(
        description="succeeded, failed (a retry was scheduled), dead, cancelled, released "
        "(given back unrun by a draining worker) or lost (its lease ran out: WorkerLost)"
    )
    error: JobError | None

    @classmethod
    def of(cls, record: AttemptRecord) -> AttemptOut:
        error = None
        if record.error_type is not None:
            error = JobError(
                type=record.error_type,
                message=record.error_message or "",
                traceback=record.traceback,
            )
        return cls(
            attempt=record.attempt,
            worker=record.worker,
            started_at=record.started_at,
            finished_at=record.finished_at,
            outcome=record.outcome,
            error=error,
        )


class JobOut(BaseModel):
    id: str
    task: str
    queue: str
    state: JobState
    priority: int
    pool: str
    pool_slots: int
    attempt: int
    tries: int
    max_attempts: int
    timeout: float | None
    idempotency_key: str | None
    enqueued_at: float
    run_at: float | None
    started_at: float | None
    finished_at: float | None
    lease_expires_at: float | None
    worker: str | None
    args: list[JsonValue]
    kwargs: dict[str, JsonValue]
    result: JsonValue = None
    error: JobError | None
    cancel_requested: bool
    attempts: list[AttemptOut] | None = Field(
        default=None,
        description="the ended attempts, oldest first (the last "
        f"{MAX_ATTEMPTS_KEPT}); only GET /api/v1/jobs/{{id}} reads them, null elsewhere",
    )

    @classmethod
    def of(cls, job: Job, *, attempts: bool = False) -> JobOut:
        error = None
        if job.error is not None:
            error = JobError(
                type=job.error.type, message=job.error.message, traceback=job.error.traceback
            )
        return cls(
            id=job.id,
            task=job.task,
            queue=job.queue,
            state=job.state,
            priority=job.priority,
            pool=job.pool,
            pool_slots=job.pool_slots,
            attempt=job.attempt,
            tries=job.tries,
            max_attempts=job.max_attempts,
            timeout=job.timeout,
            idempotency_key=job.idempotency_key,
            enqueued_at=job.enqueued_at,
            run_at=job.run_at,
            started_at=job.started_at,
            finished_at=job.finished_at,
            lease_expires_at=job.lease_expires_at,
            worker=job.worker,
            args=job.args,
            kwargs=job.kwargs,
            result=job.result,
            error=error,
            cancel_requested=job.cancel_requested,
            attempts=[AttemptOut.of(a) for a in job.attempts] if attempts else None,
        )


class JobPage(BaseModel):
    jobs: list[JobOut]
    limit: int
    offset: int
    next_offset: int | None = Field(
        description="the offset of the next page of a plain listing; null on the last, and "
        "for a search (time range, text) or a page reached by cursor"
    )
    next_cursor: str | None = Field(
        default=None, description="pass it as `cursor` for the next page; null on the last"
    )
    truncated: bool = Field(
        default=False,
        description="the page stopped at its bound of jobs looked at before it was full: more "
        "may match from next_cursor",
    )


class QueueOut(BaseModel):
    queue: str
    waiting: int = Field(description="runnable now")
    scheduled: int = Field(description="waiting for a future time (delay, retry backoff)")
    running: int
    oldest_age: float = Field(description="seconds the longest-waiting runnable job has waited")
    paused: bool = Field(
        default=False, description="workers claim none of its jobs until it is resumed"
    )


class Queues(BaseModel):
    queues: list[QueueOut]


class PoolOut(BaseModel):
    pool: str
    size: int
    used: int


class Pools(BaseModel):
    pools: list[PoolOut]


class QueuePause(BaseModel):
    queue: str
    paused: bool = Field(description="whether the queue is paused now")
    changed: bool = Field(description="false if it already was (paused again, or not paused)")


class WorkerOut(BaseModel):
    id: str
    host: str
    pid: int
    queues: list[str]
    concurrency: int
    version: str
    started_at: float
    seen_at: float = Field(description="when the store received its last report")
    state: str = Field(description="running, draining, stopped, or lost (silent too long)")


class Workers(BaseModel):
    workers: list[WorkerOut]


#: the states a bulk call may select (the same sets as ``core.states``; a test pins them)
RetryableState = Literal["dead", "cancelled"]
CancellableState = Literal["scheduled", "queued", "failed", "running"]
#: most jobs one bulk call changes (the brokers' bound)
MAX_BATCH = 1000


class _BulkFilter(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    queue: str | None = Field(default=None, min_length=1, max_length=64)
    task: str | None = Field(default=None, min_length=1, max_length=MAX_NAME)
    limit: int = Field(default=MAX_BATCH, ge=1, le=MAX_BATCH, description="most jobs changed")

    def filters(self) -> dict[str, str]:
        given = {"state": getattr(self, "state", None), "queue": self.queue, "task": self.task}
        return {k: str(v) for k, v in given.items() if v is not None}


class BulkRetry(_BulkFilter):
    """Which dead or cancelled jobs to run again (no ``state``: both)."""

    state: RetryableState | None = None


class BulkCancel(_BulkFilter):
    """Which pending or running jobs to cancel (no ``state``: all of them)."""

    state: CancellableState | None = None


class BulkDone(BaseModel):
    changed: int = Field(description="jobs changed by this call")
    more: bool = Field(description="a full batch changed: call again for the rest")


class MinuteOut(BaseModel):
    """What ended in one minute, counted as it happened (faena.core.stats)."""

    minute: float = Field(description="start of the minute, POSIX seconds")
    succeeded: int = Field(description="attempts that succeeded")
    retried: int = Field(
        description="attempts that failed, or whose worker was lost, and will run again"
    )
    dead: int = Field(description="jobs that ended dead (their last attempt failed or was lost)")
    cancelled: int = Field(
        description="jobs cancelled: waiting ones when cancelled, running ones as they stopped"
    )


class PercentilesOut(BaseModel):
    count: int = Field(description="durations in the sample")
    p50: float | None
    p95: float | None
    p99: float | None


class StatsOut(BaseModel):
    since: float = Field(description="start of the oldest minute of the window")
    until: float = Field(description="now, on the server's clock")
    queue: str | None
    minutes: list[MinuteOut] = Field(description="attempt endings per minute, oldest first")
    run_time: PercentilesOut = Field(description="finished_at - started_at, seconds")
    wait_time: PercentilesOut = Field(description="started_at - run_at, seconds")
    sample_limit: int = Field(description="most recent finished jobs the percentiles read")
    states: dict[str, int] = Field(description="jobs in the store now, by state (every state)")
