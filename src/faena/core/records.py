"""Reading stored job records that may be corrupt: pure checks, no I/O.

A record is written by faena, but a store can still hand back a value faena never wrote (a
row edited by hand, a bad migration, a disk fault): ``attempt = 'abc'``, a timeout that is
not a number, arguments that are not JSON. Such a job cannot run, and must not stop the
others from running either: the broker makes it ``dead`` by itself, with
:data:`CORRUPT_JOB` as its ``error_type`` and a message naming the field and its value
(:func:`corrupt_error`), and claims the rest. This module is the one owner of what
"readable" means; the Redis scripts (``lua/lib.lua``: ``unreadable``) apply the same rules.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import Any

from faena.core.job import ErrorInfo, Job
from faena.core.states import JobState
from faena.errors import CorruptJobError

CORRUPT_JOB = "CorruptJobError"

#: fields that hold an integer, and a float (the optional ones may also be None)
INT_FIELDS = ("priority", "pool_slots", "attempt", "tries", "max_attempts")
FLOAT_FIELDS = ("enqueued_at", "run_at")
OPTIONAL_FLOAT_FIELDS = ("timeout", "started_at", "finished_at", "lease_expires_at")

_INT_TEXT = re.compile(r"-?[0-9]+")
_STATES = frozenset(state.value for state in JobState)
_SHOWN_CHARS = 80

#: what a dead corrupt job keeps in place of an unreadable value, so that it can be read
#: (listed, shown, retried by hand); the message keeps the value that was there
NEUTRAL: dict[str, Any] = {
    "priority": 0,
    "pool_slots": 1,
    "attempt": 0,
    "tries": 0,
    "max_attempts": 1,
    "timeout": None,
    "started_at": None,
    "finished_at": None,
    "lease_expires_at": None,
}


#: the counts faena adds to (and sums): below this on every backend, so that one more still
#: fits PostgreSQL's integer, and Lua (whose numbers are doubles) writes it back as digits
COUNT_LIMIT = 2**31 - 1
COUNTERS = frozenset({"pool_slots", "attempt", "tries"})


def _is_int(value: object, text: bool, name: str = "") -> bool:
    if type(value) is int:
        number = value
    elif text and isinstance(value, str) and _INT_TEXT.fullmatch(value) is not None:
        number = int(value)
    else:
        return False
    return name not in COUNTERS or -COUNT_LIMIT < number < COUNT_LIMIT


def _is_float(value: object, text: bool) -> bool:
    if type(value) is int:
        return True
    if type(value) is float:
        return not math.isnan(value)
    if not text or not isinstance(value, str) or "x" in value.lower() or "_" in value:
        return False
    try:
        return not math.isnan(float(value))
    except ValueError:
        return False


def unreadable(values: Mapping[str, object], *, text: bool = False) -> tuple[str, object] | None:
    """The first field of a stored record (by :class:`Job` field name) that cannot be read,
    and its value; None if every field can be. Only the fields present in ``values`` are
    checked. Numbers must be Python numbers as the store's driver returns them, or with
    ``text`` (Redis) also their decimal text; an empty optional field is None (or '')."""
    state = values.get("state", "queued")
    if state not in _STATES:
        return "state", state
    for name in INT_FIELDS:
        if name in values and not _is_int(values[name], text, name):
            return name, values[name]
    for name in FLOAT_FIELDS:
        if name in values and not _is_float(values[name], text):
            return name, values[name]
    for name in OPTIONAL_FLOAT_FIELDS:
        value = values.get(name)
        if value is not None and value != "" and value is not False and not _is_float(value, text):
            return name, value
    return None


def shown(value: object) -> str:
    """A stored value as a message quotes it (cut when long)."""
    if value is None or value is False:
        return "absent"
    text = repr(value)
    if len(text) > _SHOWN_CHARS:
        text = text[:_SHOWN_CHARS] + "...(cut)"
    return text


#: the message of a corrupt job: also filled in by the Redis scripts (``lua/lib.lua``)
MESSAGE_TEMPLATE = (
    "job {job_id}: its stored {field} is {value}, which is not {expected}; the record was "
    "changed outside faena or damaged, so the job cannot run and was made dead by itself "
    "(the other jobs run on). Enqueue it again with good values, or fix the stored record "
    "and retry it (faena jobs retry {job_id})"
)


def corrupt_message(job_id: str, field: str, value: object, expected: str = "") -> str:
    what = expected or EXPECTED.get(field, "a value faena wrote")
    return MESSAGE_TEMPLATE.format(job_id=job_id, field=field, value=shown(value), expected=what)


#: what each field must hold, as a message says it
EXPECTED = {
    "state": "a job state (" + ", ".join(sorted(_STATES)) + ")",
    **{name: "an integer" for name in INT_FIELDS},
    **{name: f"an integer (a count below {COUNT_LIMIT})" for name in COUNTERS},
    **{name: "a number" for name in FLOAT_FIELDS},
    **{name: "a number or empty" for name in OPTIONAL_FLOAT_FIELDS},
    "args": "a JSON array (the positional arguments)",
    "kwargs": "a JSON object (the keyword arguments)",
}


def corrupt_error(job_id: str, field: str, value: object, expected: str = "") -> ErrorInfo:
    return ErrorInfo(CORRUPT_JOB, corrupt_message(job_id, field, value, expected))


def call_args(job: Job) -> tuple[list[Any], dict[str, Any]]:
    """A job's positional and keyword arguments; :class:`CorruptJobError` (never retried)
    if the stored text is not a JSON array and a JSON object."""
    args = _decoded(job, "args", job.args_json, "[]", list)
    kwargs = _decoded(job, "kwargs", job.kwargs_json, "{}", dict)
    return args, kwargs


def _decoded(job: Job, field: str, text: object, empty: str, kind: type) -> Any:
    if text == empty:
        return kind()
    try:
        value = json.loads(text)  # type: ignore[arg-type]  # the store may hand back anything
    except (TypeError, ValueError) as exc:
        raise _corrupt(job.id, field, text, f"{EXPECTED[field]} ({exc})") from None
    if not isinstance(value, kind):
        raise _corrupt(job.id, field, text, EXPECTED[field])
    return value


def _corrupt(job_id: str, field: str, value: object, expected: str) -> CorruptJobError:
    message = corrupt_message(job_id, field, value, expected)
    return CorruptJobError(message, job_id=job_id, field=field, value=value)
