"""Mapping between rows of the jobs table and :class:`~faena.core.job.Job`."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

from faena.brokers.protocol import ClaimResult, Reaped
from faena.core.job import ErrorInfo, Job, Lease, NewJob, Outcome
from faena.core.states import JobState

#: the jobs table's columns in table order: queries select ``j.*`` and decode by position
JOB_COLUMNS = (
    "id",
    "seq",
    "task",
    "queue",
    "args_json",
    "kwargs_json",
    "state",
    "priority",
    "pool",
    "pool_slots",
    "attempt",
    "tries",
    "max_attempts",
    "timeout",
    "idempotency_key",
    "enqueued_at",
    "run_at",
    "started_at",
    "finished_at",
    "lease_expires_at",
    "worker",
    "result_json",
    "error_type",
    "error_message",
    "error_traceback",
    "cancel_requested",
    "run_id",  # a pipeline step's run (version 12); not part of Job
)

Row = Sequence[Any]

#: one encoder for every call (json.dumps with separators builds a new one each time); its
#: output is ASCII, so it can be sent as is whatever the connection's encoding
_JSON = json.JSONEncoder(separators=(",", ":"))


_STATES = {state.value: state for state in JobState}


def to_job(row: Row, at: int = 0) -> Job:
    """The job whose columns start at position ``at`` of ``row``."""
    r = row[at : at + len(JOB_COLUMNS)]
    error = None if r[22] is None else ErrorInfo(r[22], r[23] or "", r[24] or "")
    return Job(
        id=r[0],
        task=r[2],
        queue=r[3],
        args_json=r[4],
        kwargs_json=r[5],
        state=_STATES.get(r[6]) or JobState(r[6]),  # JobState() names a bad value
        priority=r[7],
        pool=r[8],
        pool_slots=r[9],
        attempt=r[10],
        tries=r[11],
        max_attempts=r[12],
        timeout=r[13],
        idempotency_key=r[14],
        enqueued_at=r[15],
        run_at=r[16],
        started_at=r[17],
        finished_at=r[18],
        lease_expires_at=r[19],
        worker=r[20],
        result_json=r[21],
        error=error,
        cancel_requested=r[25],
    )


def to_claim_result(rows: Sequence[Row]) -> tuple[list[int], ClaimResult]:
    """Split ``job_event`` rows (kind, ord, job columns): finished positions, claim result
    (claimed jobs in admission order: ``ord``; a row of kind ``s``: saturated)."""
    finished: list[int] = []
    claimed: list[tuple[int, Job]] = []
    reaped: list[Reaped] = []
    saturated = False
    for row in rows:
        kind = row[0]
        if kind == "f":
            finished.append(row[1])
        elif kind == "c":
            claimed.append((row[1], to_job(row, 2)))
        elif kind == "s":
            saturated = True
        else:
            job = to_job(row, 2)
            reaped.append(Reaped(job, job.state))
    claimed.sort(key=lambda pair: pair[0])
    return finished, ClaimResult([job for _, job in claimed], reaped, saturated)


def once_each(leases: Sequence[Lease]) -> list[int]:
    """Positions of the first write for each ``(job id, attempt)``.

    A later write for the same attempt in one group finds the job no longer running, so it is
    ``False`` without asking the store; this keeps the SQL a plain join.
    """
    seen: set[tuple[str, int]] = set()
    keep = []
    for i, lease in enumerate(leases):
        key = (lease.job_id, lease.attempt)
        if key not in seen:
            seen.add(key)
            keep.append(i)
    return keep


def applied(n: int, keep: Sequence[int], positions: Iterable[int]) -> list[bool]:
    """``n`` flags: True where the store applied the write (1-based ``positions`` in ``keep``)."""
    out = [False] * n
    for position in positions:
        out[keep[position - 1]] = True
    return out


def outcomes_json(outcomes: Sequence[Outcome]) -> str:
    """A group of outcomes as the JSON array ``exchange`` reads (keys of NULLs left out)."""
    done = []
    for o in outcomes:
        item: dict[str, Any] = {"id": o.job_id, "attempt": o.attempt, "state": o.state.value}
        if o.result_json is not None:
            item["result"] = o.result_json
        if o.error is not None:
            item["etype"] = o.error.type
            item["emsg"] = o.error.message
            item["etb"] = o.error.traceback
        if o.retry_at is not None:
            item["retry_at"] = o.retry_at
        if o.max_attempts is not None:
            item["max_attempts"] = o.max_attempts
        done.append(item)
    return _JSON.encode(done)


#: the types of :func:`copy_row`'s values, in the column order of the ``copy_jobs`` query
COPY_TYPES = (
    "text",
    "text",
    "text",
    "text",
    "text",
    "text",
    "int4",
    "text",
    "int4",
    "int4",
    "float8",
    "float8",
    "float8",
)


def copy_row(new: NewJob, created: Job) -> tuple[Any, ...]:
    """A new job as a row of the ``copy_jobs`` query (state and times as lifecycle set them)."""
    return (
        new.id,
        new.task,
        new.queue,
        new.args_json,
        new.kwargs_json,
        created.state.value,
        new.priority,
        new.pool,
        new.pool_slots,
        new.max_attempts,
        new.timeout,
        created.enqueued_at,
        created.run_at,
    )


def new_jobs_json(jobs: Sequence[NewJob], created: Sequence[Job]) -> str:
    """New jobs as the JSON array ``enqueue`` reads (state and run_at as lifecycle set them)."""
    return _JSON.encode(
        [
            {
                "id": j.id,
                "task": j.task,
                "queue": j.queue,
                "args": j.args_json,
                "kwargs": j.kwargs_json,
                "state": c.state.value,
                "priority": j.priority,
                "pool": j.pool,
                "pool_slots": j.pool_slots,
                "max_attempts": j.max_attempts,
                "timeout": j.timeout,
                "key": j.idempotency_key,
                "run_at": c.run_at,
            }
            for j, c in zip(jobs, created, strict=True)
        ]
    )
