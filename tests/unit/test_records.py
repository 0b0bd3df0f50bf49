"""faena.core.records: what a stored job must hold to be read, and the message when not."""

from __future__ import annotations

import math

import pytest

from faena.core.job import Job
from faena.core.records import call_args, corrupt_error, unreadable
from faena.core.states import JobState
from faena.errors import CorruptJobError


def job(args_json: object = "[]", kwargs_json: object = "{}") -> Job:
    return Job(
        id="j1",
        task="t",
        queue="q",
        args_json=args_json,  # type: ignore[arg-type]  # a store may hand back anything
        kwargs_json=kwargs_json,  # type: ignore[arg-type]
        state=JobState.RUNNING,
        priority=0,
        pool="default_pool",
        pool_slots=1,
        attempt=1,
        tries=1,
        max_attempts=4,
        timeout=None,
        idempotency_key=None,
        enqueued_at=1.0,
        run_at=1.0,
    )


SOUND = {
    "state": "queued",
    "priority": 0,
    "pool_slots": 1,
    "attempt": 0,
    "tries": 0,
    "max_attempts": 4,
    "timeout": None,
    "enqueued_at": 1.5,
    "run_at": 2,
    "started_at": None,
    "finished_at": None,
    "lease_expires_at": None,
}


def test_a_sound_record_is_readable_as_numbers_or_as_text() -> None:
    assert unreadable(SOUND) is None
    as_text = {k: ("" if v is None else str(v)) for k, v in SOUND.items()}
    assert unreadable(as_text, text=True) is None
    assert unreadable({**SOUND, "timeout": math.inf}) is None, "no timeout cap is a number"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("state", "bogus"),
        ("attempt", "abc"),
        ("attempt", "1"),  # text where the store returns numbers: not what faena wrote
        ("attempt", True),
        ("attempt", 1.0),
        ("attempt", 2**31 - 1),  # a count one more of which no backend can store
        ("pool_slots", 2**63),
        ("pool_slots", None),
        ("timeout", "abc"),
        ("timeout", math.nan),
        ("run_at", None),
        ("enqueued_at", b"\x00"),
    ],
)
def test_a_value_faena_never_writes_is_named(field: str, value: object) -> None:
    assert unreadable({**SOUND, field: value}) == (field, value)


@pytest.mark.parametrize(
    ("field", "value", "ok"),
    [
        ("attempt", "12", True),
        ("attempt", "-3", True),
        ("attempt", "1.0", False),
        ("attempt", " 1", False),
        ("attempt", "2147483646", True),
        ("attempt", "2147483647", False),  # one more would not fit PostgreSQL's integer
        ("tries", "1" * 14, False),  # Lua would write one more back as 1.1111111111111e+13
        ("priority", "9" * 18, True),  # priorities are compared, never counted with
        ("timeout", "1e3", True),
        ("timeout", "inf", True),
        ("timeout", "nan", False),
        ("timeout", "0x10", False),  # Lua reads hex, Python does not
        ("timeout", "1_0", False),  # Python reads underscores, Lua does not
        ("timeout", "", True),  # no timeout
        ("run_at", "", False),
    ],
)
def test_text_as_the_redis_scripts_read_it(field: str, value: str, ok: bool) -> None:
    as_text = {k: ("" if v is None else str(v)) for k, v in SOUND.items()}
    found = unreadable({**as_text, field: value}, text=True)
    assert found is None if ok else found == (field, value)


def test_the_message_names_the_job_field_value_and_what_to_do() -> None:
    error = corrupt_error("j1", "attempt", "abc")
    assert error.type == "CorruptJobError"
    assert error.message.startswith("job j1: its stored attempt is 'abc', which is not an integer")
    assert "faena jobs retry j1" in error.message
    long = corrupt_error("j1", "args", "x" * 500).message
    assert "...(cut)" in long and len(long) < 600


@pytest.mark.parametrize(
    ("args", "kwargs", "field"),
    [
        ("[1, 2", "{}", "args"),
        ('{"a": 1}', "{}", "args"),
        ("[]", "[1]", "kwargs"),
        ("[]", "\ufffd", "kwargs"),
        (None, "{}", "args"),
    ],
)
def test_arguments_that_are_not_a_json_array_and_object(
    args: object, kwargs: str, field: str
) -> None:
    with pytest.raises(CorruptJobError, match=f"its stored {field} is ") as info:
        call_args(job(args, kwargs))
    assert info.value.job_id == "j1" and info.value.field == field


def test_good_arguments_decode() -> None:
    assert call_args(job('[1, "a"]', '{"k": null}')) == ([1, "a"], {"k": None})
    assert call_args(job()) == ([], {})
