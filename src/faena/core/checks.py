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

#: the priorities every backend can store and order (PostgreSQL keeps them as ``integer``;
#: its bulk COPY wrapped 2**31 round to -2**31)
PRIORITY_MIN = -(2**31)
PRIORITY_MAX = 2**31 - 1
#: the most pool slots or attempts (retries + 1) a job can have: the counts faena adds to
#: stay below 2**31 - 1, so that one more still fits PostgreSQL's ``integer`` (and a Lua
#: double writes it back as digits)
COUNT_MAX = 2**31 - 2


def _refuse(field: str, value: object, why: str, task: str | None = None) -> InvalidValueError:
    """The error for ``field`` (of ``task``'s jobs, if given), built only when refusing."""
    if task is not None:
        field = f"task {task!r}: {field}"
    return InvalidValueError(f"{field} {value!r} is not valid: {why}", field=field, value=value)


def check_text(field: str, value: object) -> str:
    """An identifier the stores keep as text (task name, queue, pool, idempotency key, worker
    id, job id, a filter): a non-empty ``str`` without NUL that encodes to UTF-8.

    PostgreSQL cannot store NUL in text (its C strings end there) and no store can encode a
    lone surrogate: both are refused everywhere, so every backend gives the same answer."""
    if type(value) is str and value and "\0" not in value and value.isascii():
        return value  # the usual case: one pass over a short string
    why = _text_problem(value)
    if why is not None:
        raise _refuse(field, value, why)
    return value  # type: ignore[return-value]  # _text_problem found it to be a str


def _text_problem(value: object) -> str | None:
    if not isinstance(value, str):
        return f"it must be a string, got {type(value).__name__}"
    if not value:
        return "it must not be empty"
    if "\0" in value:
        return (
            f"it contains a NUL character (\\x00) at position {value.index(chr(0))}, which "
            f"the stores cannot keep in text; remove it"
        )
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        return (
            f"it is not valid Unicode: a lone surrogate {value[exc.start]!r} at position "
            f"{exc.start}; pass text that encodes to UTF-8"
        )
    return None


def _is_int(value: object) -> TypeGuard[int]:
    return type(value) is int or (isinstance(value, int) and not isinstance(value, bool))


def check_pool_slots(task: str, value: object) -> int:
    if _is_int(value) and 1 <= value <= COUNT_MAX:
        return value
    why = f"it must be an integer from 1 to {COUNT_MAX} (the slots of its pool a job holds)"
    raise _refuse("pool_slots", value, why, task)


def check_retries(task: str, value: object) -> int:
    if _is_int(value) and 0 <= value < COUNT_MAX:
        return value
    why = f"it must be an integer from 0 to {COUNT_MAX - 1} (attempts after the first)"
    raise _refuse("retries", value, why, task)


def check_max_attempts(task: str, value: object) -> int:
    if _is_int(value) and 1 <= value <= COUNT_MAX:
        return value
    why = f"it must be an integer from 1 to {COUNT_MAX} (retries + 1)"
    raise _refuse("max_attempts", value, why, task)


def _is_number(value: object) -> TypeGuard[float]:
    return type(value) is float or (isinstance(value, int | float) and not isinstance(value, bool))


def check_timeout(task: str, value: object) -> float | None:
    """Seconds an attempt may run: a finite number > 0, or ``None`` for no timeout."""
    if value is None or (_is_number(value) and 0 < value < math.inf):
        return value
    why = "it must be a number of seconds > 0, or None for no timeout"
    raise _refuse("timeout", value, why, task)


def check_priority(task: str, value: object) -> int:
    if _is_int(value) and PRIORITY_MIN <= value <= PRIORITY_MAX:
        return value
    why = f"it must be an integer between {PRIORITY_MIN} and {PRIORITY_MAX} (higher runs first)"
    raise _refuse("priority", value, why, task)


def check_run_at(task: str, value: object) -> float | None:
    if value is None or (_is_number(value) and math.isfinite(value)):
        return value
    raise _refuse("run_at", value, "it must be a POSIX time in seconds, or None for now", task)


def check_delay(task: str, value: object) -> float:
    if _is_number(value) and 0 <= value < math.inf:
        return value
    raise _refuse("delay", value, "it must be a number of seconds >= 0", task)


def check_key(task: str, value: object) -> str | None:
    """An idempotency key: ``None``, or text as :func:`check_text` wants it."""
    if value is None:
        return None
    why = _text_problem(value)
    if why is not None:
        raise _refuse("idempotency_key", value, why, task)
    return value  # type: ignore[return-value]  # _text_problem found it to be a str


#: the shared fields (and their types: ``True == 1``) of the last jobs found valid; a
#: producer enqueues the same task's options over and over
_last_valid: tuple[object, ...] | None = None


def check_new_jobs(jobs: Sequence[NewJob]) -> None:
    """Every field of jobs to enqueue, before any is written (a broker's ``enqueue``)."""
    prev: NewJob | None = None
    for new in jobs:
        if not (  # the jobs of one call share their options (the very same objects)
            prev is not None
            and new.task is prev.task
            and new.queue is prev.queue
            and new.pool is prev.pool
            and new.pool_slots is prev.pool_slots
            and new.max_attempts is prev.max_attempts
            and new.timeout is prev.timeout
            and new.priority is prev.priority
        ):
            _check_options(new)
        prev = new
        check_text("job id", new.id)
        if new.idempotency_key is not None:
            check_key(new.task, new.idempotency_key)
        if new.run_at is not None:
            check_run_at(new.task, new.run_at)


def _check_options(new: NewJob) -> None:
    global _last_valid
    shared = (
        new.task,
        new.queue,
        new.pool,
        new.pool_slots,
        new.max_attempts,
        new.timeout,
        new.priority,
        type(new.pool_slots),
        type(new.max_attempts),
        type(new.timeout),
        type(new.priority),
    )
    if shared != _last_valid:
        _check_shared(new)
        _last_valid = shared


def _check_shared(new: NewJob) -> None:
    task = check_text("task name", new.task)
    check_text("queue", new.queue)  # the app holds names to check_name; a store, to text
    check_text("pool", new.pool)
    check_pool_slots(task, new.pool_slots)
    check_max_attempts(task, new.max_attempts)
    check_timeout(task, new.timeout)
    check_priority(task, new.priority)


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
