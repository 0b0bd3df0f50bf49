"""Mapping between faena_jobs rows and :class:`~faena.core.job.Job`."""

from __future__ import annotations

import sqlite3
from typing import Any

from faena.core.job import ErrorInfo, Job
from faena.core.states import JobState

COLUMNS = (
    "id, task, queue, args, kwargs, state, priority, pool, pool_slots, attempt, tries, "
    "max_attempts, timeout, idempotency_key, enqueued_at, run_at, started_at, finished_at, "
    "lease_expires_at, worker, result, error_type, error_message, error_traceback, "
    "cancel_requested, seq"
)


def _fields(row: sqlite3.Row | tuple[Any, ...]) -> dict[str, Any]:
    error = None
    if row[21] is not None:
        error = ErrorInfo(row[21], row[22] or "", row[23] or "")
    return {
        "id": row[0],
        "task": row[1],
        "queue": row[2],
        "args_json": row[3],
        "kwargs_json": row[4],
        "state": JobState(row[5]),
        "priority": row[6],
        "pool": row[7],
        "pool_slots": row[8],
        "attempt": row[9],
        "tries": row[10],
        "max_attempts": row[11],
        "timeout": row[12],
        "idempotency_key": row[13],
        "enqueued_at": row[14],
        "run_at": row[15],
        "started_at": row[16],
        "finished_at": row[17],
        "lease_expires_at": row[18],
        "worker": row[19],
        "result_json": row[20],
        "error": error,
        "cancel_requested": bool(row[24]),
    }


def to_job(row: sqlite3.Row | tuple[Any, ...]) -> Job:
    return Job(**_fields(row))


def to_claimed_job(
    row: sqlite3.Row | tuple[Any, ...], worker: str, now: float, until: float
) -> Job:
    """A candidate row as the claim leaves it (what ``lifecycle.claim`` computes)."""
    fields = _fields(row)
    fields.update(
        state=JobState.RUNNING,
        attempt=row[9] + 1,
        tries=row[10] + 1,
        worker=worker,
        started_at=now,
        lease_expires_at=until,
    )
    return Job(**fields)


def error_columns(error: ErrorInfo | None) -> tuple[str | None, str | None, str | None]:
    if error is None:
        return (None, None, None)
    return (error.type, error.message, error.traceback)
