"""How jobs are laid out in Redis hashes, and how script arguments and replies are encoded.

A job is the hash ``{prefix}:j:<id>``; ``FIELDS`` is the order in which the scripts return its
fields (the Lua side is generated from this tuple, so the two never drift). ``None`` is an
absent field.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

from faena.core import records
from faena.core.job import ErrorInfo, Job, NewJob, Outcome
from faena.core.states import JobState
from faena.errors import ConfigError, CorruptJobError

FIELDS = (
    "id",
    "task",
    "queue",
    "args",
    "kwargs",
    "state",
    "priority",
    "pool",
    "slots",
    "attempt",
    "tries",
    "max",
    "timeout",
    "ikey",
    "enq",
    "run_at",
    "started",
    "finished",
    "lease",
    "worker",
    "result",
    "etype",
    "emsg",
    "etb",
    "cancel",
    "rank",
)


_PRIORITY_MIN = -(1 << 63)
_PRIORITY_MAX = (1 << 63) - 1


def prepare_lua(text: str) -> str:
    """Fill in the field layout: ``I.<field>`` becomes its position, ``FIELD_LIST`` the names."""

    def position(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in FIELDS:
            raise ValueError(f"Lua refers to I.{name}, which is not a field of {FIELDS}")
        return str(FIELDS.index(name) + 1)

    names = ", ".join(f"'{name}'" for name in FIELDS)
    text = _FIELD_REF.sub(position, text).replace("FIELD_LIST", names)
    return f"local F = {{ {names} }}\n{text}"


_FIELD_REF = re.compile(r"(?<![\w.])I\.([a-z_]+)")


_RANKS: dict[int, str] = {}  # the priorities seen so far (a few, in practice)


def priority_rank(priority: int) -> str:
    """16 hex digits that sort the highest priority first (the sequence follows in Lua)."""
    rank = _RANKS.get(priority)
    if rank is not None:
        return rank
    if not _PRIORITY_MIN <= priority <= _PRIORITY_MAX:
        raise ConfigError(
            f"priority {priority} is out of range for the Redis broker; use an integer "
            f"between {_PRIORITY_MIN} and {_PRIORITY_MAX}"
        )
    rank = format(_PRIORITY_MAX - priority, "016x")
    if len(_RANKS) < 1024:
        _RANKS[priority] = rank
    return rank


def num(value: float) -> str:
    """A float as text that Lua and Redis parse back to the very same double."""
    return repr(float(value))


def _shared(new: NewJob) -> tuple[str, str, int, str, int, int, float | None]:
    return (
        new.task,
        new.queue,
        new.priority,
        new.pool,
        new.pool_slots,
        new.max_attempts,
        new.timeout,
    )


def _options(new: NewJob) -> list[str]:
    """A job's options as the enqueue function reads them (shared by a group's jobs)."""
    return [
        new.task,
        new.queue,
        str(int(new.priority)),
        new.pool,
        str(int(new.pool_slots)),
        str(int(new.max_attempts)),
        "" if new.timeout is None else num(new.timeout),
        priority_rank(new.priority),
    ]


def _own(new: NewJob, now_text: str) -> tuple[str, str, str, str, str]:
    """A job's own fields: id, args, kwargs, run_at, idempotency key ('' or '+' key)."""
    key = new.idempotency_key
    return (
        new.id,
        new.args_json,
        new.kwargs_json,
        now_text if new.run_at is None else num(new.run_at),
        "" if key is None else "+" + key,
    )


def enqueue_args(jobs: Sequence[NewJob], now_text: str) -> list[str]:
    """The enqueue function's arguments after the time (see ``lua/enqueue.lua``): one job as
    ``1`` then its options and fields, the cheapest form for the common enqueue of one job;
    more as one JSON text of groups (runs of jobs that share their options: the options,
    then the jobs' own fields as columns). ``now_text``: the time, as :func:`num` writes it."""
    if len(jobs) == 1:
        return ["1", *_options(jobs[0]), *_own(jobs[0], now_text)]
    groups: list[list[Any]] = []
    last: tuple[str, str, int, str, int, int, float | None] | None = None
    ids: list[str] = []
    args: list[str] = []
    kwargs: list[str] = []
    run_ats: list[str] = []
    keys: list[str] = []
    for new in jobs:
        shared = _shared(new)
        if shared != last:
            ids, args, kwargs, run_ats, keys = [], [], [], [], []
            groups.append([_options(new), ids, args, kwargs, run_ats, keys])
            last = shared
        job_id, job_args, job_kwargs, run_at, key = _own(new, now_text)
        ids.append(job_id)
        args.append(job_args)
        kwargs.append(job_kwargs)
        run_ats.append(run_at)
        keys.append(key)
    return [_dumps(groups)]


# one encoder for every call (json.dumps with options builds a new one each time)
_dumps = json.JSONEncoder(ensure_ascii=False).encode


def outcome_args(outcome: Outcome) -> list[str]:
    err = outcome.error
    return [
        outcome.job_id,
        str(int(outcome.attempt)),
        outcome.state.value,
        "0" if outcome.result_json is None else "1",
        outcome.result_json or "",
        "0" if err is None else "1",
        "" if err is None else err.type,
        "" if err is None else err.message,
        "" if err is None else err.traceback,
        "" if outcome.retry_at is None else num(outcome.retry_at),
        "" if outcome.max_attempts is None else str(int(outcome.max_attempts)),
    ]


def _text(value: Any) -> str | None:
    """A field that may hold no value: absent (None, or false in JSON) or ''."""
    return value or None


def _float(value: Any) -> float | None:
    return float(value) if value else None


_STATES = {state.value: state for state in JobState}


def to_job(record: Sequence[Any]) -> Job:
    """A job from its fields in ``FIELDS`` order (from HMGET, or decoded from JSON). A
    record that cannot be read (the scripts make such a job dead when they meet it: it
    can still be seen before) raises :class:`CorruptJobError` naming the field."""
    try:
        return _to_job(record)
    except (TypeError, ValueError) as exc:
        values = dict(zip(_JOB_FIELDS, record, strict=False))
        job_id = str(values.get("id"))
        bad = records.unreadable(values, text=True) or ("record", exc)
        message = records.corrupt_message(job_id, *bad)
        raise CorruptJobError(message, job_id=job_id, field=bad[0], value=bad[1]) from exc


#: ``FIELDS`` by :class:`Job` field name
_JOB_FIELDS = tuple(
    {
        "args": "args_json",
        "kwargs": "kwargs_json",
        "slots": "pool_slots",
        "max": "max_attempts",
        "ikey": "idempotency_key",
        "enq": "enqueued_at",
        "started": "started_at",
        "finished": "finished_at",
        "lease": "lease_expires_at",
        "result": "result_json",
    }.get(name, name)
    for name in FIELDS
)


def _to_job(record: Sequence[Any]) -> Job:
    (
        job_id,
        task,
        queue,
        args,
        kwargs,
        state,
        priority,
        pool,
        slots,
        attempt,
        tries,
        max_attempts,
        timeout,
        ikey,
        enq,
        run_at,
        started,
        finished,
        lease,
        worker,
        result,
        etype,
        emsg,
        etb,
        cancel,
        _rank,
    ) = record
    return Job(
        id=job_id,
        task=task,
        queue=queue,
        args_json=args,
        kwargs_json=kwargs,
        state=_STATES.get(state) or JobState(state),  # JobState() names a bad value
        priority=int(priority),
        pool=pool,
        pool_slots=int(slots),
        attempt=int(attempt),
        tries=int(tries),
        max_attempts=int(max_attempts),
        timeout=_float(timeout),
        idempotency_key=None if ikey is None or ikey is False else ikey,
        enqueued_at=float(enq),
        run_at=float(run_at),
        started_at=_float(started),
        finished_at=_float(finished),
        lease_expires_at=_float(lease),
        worker=_text(worker),
        result_json=_text(result),
        error=None if etype is None or etype is False else ErrorInfo(etype, emsg or "", etb or ""),
        cancel_requested=cancel == "1",
    )


def rows(reply: str) -> Any:
    """A script's JSON reply (Lua's cjson writes an empty array as ``{}``)."""
    value = json.loads(reply)
    return value or []


def to_jobs(records: Any) -> list[Job]:
    return [to_job(r) for r in records or ()]
