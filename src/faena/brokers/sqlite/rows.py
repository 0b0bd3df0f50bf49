"""Mapping between faena_jobs rows and :class:`~faena.core.job.Job`."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

from faena.core import records
from faena.core.job import ErrorInfo, Job, Outcome
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


#: the positions of the fields whose stored value faena must be able to read
_CHECKED = (
    ("state", 5),
    ("priority", 6),
    ("pool_slots", 8),
    ("attempt", 9),
    ("tries", 10),
    ("max_attempts", 11),
    ("timeout", 12),
    ("enqueued_at", 14),
    ("run_at", 15),
    ("started_at", 16),
    ("finished_at", 17),
    ("lease_expires_at", 18),
)


def unreadable_field(row: sqlite3.Row | tuple[Any, ...]) -> tuple[str, object] | None:
    """The first field of a row that cannot be read (SQLite keeps any text in a numeric
    column), and its value; None for a sound row."""
    if (  # the common case, cheaply: a claim checks every row it reads
        type(row[6]) is int
        and type(row[8]) is int
        and type(row[9]) is int
        and type(row[10]) is int
        and type(row[11]) is int
        and -_LIMIT < row[8] < _LIMIT
        and -_LIMIT < row[9] < _LIMIT
        and -_LIMIT < row[10] < _LIMIT
        and type(row[14]) is float
        and type(row[15]) is float
        and type(row[12]) in _FLOAT_OR_NONE
        and type(row[16]) in _FLOAT_OR_NONE
        and type(row[17]) in _FLOAT_OR_NONE
        and type(row[18]) in _FLOAT_OR_NONE
        and row[5] in _STATES
    ):
        return None
    return records.unreadable({name: row[at] for name, at in _CHECKED})


_FLOAT_OR_NONE = frozenset({float, type(None)})
_LIMIT = records.COUNT_LIMIT
_STATES = frozenset(state.value for state in JobState)


def bury(
    conn: sqlite3.Connection,
    row: sqlite3.Row | tuple[Any, ...],
    bad: tuple[str, object],
    now: float,
) -> Job:
    """Make a row that cannot be read dead by itself, in the caller's transaction. Each
    unreadable value is replaced by a neutral one (the message keeps the first), so the row
    can be listed and retried by hand; a lease it held ends. Returns the job as it now is."""
    field, value = bad
    error = records.corrupt_error(row[0], field, value)
    fixes: dict[str, Any] = {}
    for name, at in _CHECKED[1:]:
        if records.unreadable({name: row[at]}) is not None:
            fixes[name] = records.NEUTRAL.get(name, now)
    sets = "".join(f", {name} = ?" for name in fixes)
    conn.execute(
        "UPDATE faena_jobs SET state = 'dead', error_type = ?, error_message = ?, "
        f"error_traceback = '', finished_at = ?, lease_expires_at = NULL{sets} WHERE id = ?",
        (error.type, error.message, now, *fixes.values(), row[0]),
    )
    fields = _fields((*row[:5], JobState.DEAD.value, *row[6:]))
    fields.update(fixes)
    fields.update(error=error, finished_at=now, lease_expires_at=None)
    return Job(**fields)


def repeats(outcomes: Sequence[Outcome]) -> list[bool]:
    """For each outcome, whether an earlier one of the same call named the same attempt (a
    worker sending a finish again): only the first report of an attempt may end it."""
    seen: set[tuple[str, int]] = set()
    out = []
    for o in outcomes:
        out.append((o.job_id, o.attempt) in seen)
        seen.add((o.job_id, o.attempt))
    return out
