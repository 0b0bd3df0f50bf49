"""What a job's options and every identifier must be, checked in one place.

``@app.task``, every enqueue path of the app and every broker's entry points call these, so
a bad value is refused before anything is written, with the same error on every backend
(memory, SQLite, PostgreSQL, Redis), whether it came through the app or straight to a broker.

The checks are a few comparisons each: they run on the enqueue and claim hot paths.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import TypeGuard

from faena.core.job import Lease, NewJob, Outcome
from faena.core.states import JobState
from faena.errors import InvalidValueError

#: the priorities every backend can store and order (PostgreSQL keeps them as ``integer``)
PRIORITY_MIN = -(2**31)
PRIORITY_MAX = 2**31 - 1


def _refuse(field: str, value: object, why: str) -> InvalidValueError:
    return InvalidValueError(f"{field} {value!r} is not valid: {why}", field=field, value=value)


def check_text(field: str, value: object) -> str:
    """An identifier the stores keep as text (task name, queue, pool, idempotency key, worker
    id, job id, a filter): a non-empty ``str`` without NUL that encodes to UTF-8.

    PostgreSQL cannot store NUL in text (its C strings end there) and no store can encode a
    lone surrogate: both are refused everywhere, so every backend gives the same answer."""
    if type(value) is str and value and "\0" not in value and value.isascii():
        return value  # the usual case: one pass over a short string
    if not isinstance(value, str):
        raise _refuse(field, value, f"it must be a string, got {type(value).__name__}")
    if not value:
        raise _refuse(field, value, "it must not be empty")
    if "\0" in value:
        raise _refuse(
            field,
            value,
            f"it contains a NUL character (\\x00) at position {value.index(chr(0))}, which "
            f"the stores cannot keep in text; remove it",
        )
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise _refuse(
            field,
            value,
            f"it is not valid Unicode: a lone surrogate {value[exc.start]!r} at position "
            f"{exc.start}; pass text that encodes to UTF-8",
        ) from None
    return value


def _is_int(value: object) -> TypeGuard[int]:
    return type(value) is int or (isinstance(value, int) and not isinstance(value, bool))


def check_pool_slots(where: str, value: object) -> int:
    if _is_int(value) and value >= 1:
        return value
    raise _refuse(
        f"{where}: pool_slots",
        value,
        "it must be an integer >= 1 (the slots of its pool a running job holds)",
    )


def check_retries(where: str, value: object) -> int:
    if _is_int(value) and value >= 0:
        return value
    raise _refuse(
        f"{where}: retries", value, "it must be an integer >= 0 (attempts after the first)"
    )


def check_max_attempts(where: str, value: object) -> int:
    if _is_int(value) and value >= 1:
        return value
    raise _refuse(f"{where}: max_attempts", value, "it must be an integer >= 1 (retries + 1)")


def check_timeout(where: str, value: object) -> float | None:
    """Seconds an attempt may run: a finite number > 0, or ``None`` for no timeout."""
    if value is None:
        return None
    if isinstance(value, int | float) and not isinstance(value, bool) and 0 < value < math.inf:
        return value
    raise _refuse(
        f"{where}: timeout",
        value,
        "it must be a number of seconds > 0, or None for no timeout",
    )


def check_priority(where: str, value: object) -> int:
    if _is_int(value) and PRIORITY_MIN <= value <= PRIORITY_MAX:
        return value
    raise _refuse(
        f"{where}: priority",
        value,
        f"it must be an integer between {PRIORITY_MIN} and {PRIORITY_MAX} (higher runs first)",
    )


def check_run_at(where: str, value: object) -> float | None:
    if value is None:
        return None
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return value
    raise _refuse(f"{where}: run_at", value, "it must be a POSIX time in seconds, or None for now")


def check_delay(where: str, value: object) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool) and 0 <= value < math.inf:
        return value
    raise _refuse(f"{where}: delay", value, "it must be a number of seconds >= 0")


def check_new_jobs(jobs: Sequence[NewJob]) -> None:
    """Every field of jobs to enqueue, before any is written (a broker's ``enqueue``)."""
    seen: tuple[object, ...] | None = None
    for new in jobs:
        shared = (
            new.task,
            new.queue,
            new.pool,
            new.pool_slots,
            new.max_attempts,
            new.timeout,
            new.priority,
        )
        if shared != seen:  # the jobs of one call share these: checked once
            _check_shared(new)
            seen = shared
        check_text("job id", new.id)
        if new.idempotency_key is not None:
            check_text(f"task {new.task!r}: idempotency_key", new.idempotency_key)
        if new.run_at is not None:
            check_run_at(f"task {new.task!r}", new.run_at)


def _check_shared(new: NewJob) -> None:
    check_text("task name", new.task)
    where = f"task {new.task!r}"
    check_text("queue", new.queue)  # the app holds names to check_name; a store, to text
    check_text("pool", new.pool)
    check_pool_slots(where, new.pool_slots)
    check_max_attempts(where, new.max_attempts)
    check_timeout(where, new.timeout)
    check_priority(where, new.priority)


def check_queues(queues: Iterable[str]) -> None:
    """Queues a worker asks for (claim, waker, next run). A name that cannot be enqueued to
    is not refused (it has no jobs); one the stores cannot even read is."""
    for queue in queues:
        check_text("queue", queue)


def check_claim(worker: str, queues: Iterable[str]) -> None:
    check_text("worker id", worker)
    check_queues(queues)


def check_heartbeat(worker: str, leases: Iterable[Lease]) -> None:
    check_text("worker id", worker)
    check_leases(leases)


def check_exchange(
    outcomes: Iterable[Outcome], worker: str | None, queues: Iterable[str] | None
) -> None:
    """``finish`` (no worker) or ``finish_and_claim``."""
    check_outcomes(outcomes)
    if worker is not None:
        check_text("worker id", worker)
    if queues is not None:
        check_queues(queues)


def check_leases(leases: Iterable[Lease]) -> None:
    for lease in leases:
        check_text("job id", lease.job_id)


def check_outcomes(outcomes: Iterable[Outcome]) -> None:
    for outcome in outcomes:
        check_text("job id", outcome.job_id)


def check_filters(
    state: object, queue: str | None, task: str | None, limit: int = 0, offset: int = 0
) -> None:
    """The filters of ``list_jobs``: ``None`` or a value a job could have; a page of
    ``limit`` jobs from ``offset``, both integers >= 0 (SQL stores read a negative one
    differently)."""
    if state is not None and not isinstance(state, JobState):
        raise _refuse("state", state, "it must be a JobState or None")
    if queue is not None:
        check_text("queue", queue)
    if task is not None:
        check_text("task", task)
    for field, value in (("limit", limit), ("offset", offset)):
        if not _is_int(value) or value < 0:
            raise _refuse(field, value, "it must be an integer >= 0")
