"""The history of a job's attempts: one record per attempt that ended, bounded.

The last :data:`MAX_ATTEMPTS_KEPT` are kept, stored as a JSON array on the job on every
backend."""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

#: how many attempt records a job keeps (the oldest are dropped first)
MAX_ATTEMPTS_KEPT = 20


class AttemptOutcome(StrEnum):
    """How one attempt ended. ``failed``: it failed and a retry is scheduled; ``lost``: its
    lease ran out (the worker stopped renewing it, ``WorkerLost``); ``released``: the worker
    gave it back unrun (a drain), so it did not count."""

    SUCCEEDED = "succeeded"
    FAILED = "failed"
    DEAD = "dead"
    CANCELLED = "cancelled"
    RELEASED = "released"
    LOST = "lost"


@dataclass(frozen=True, slots=True)
class AttemptRecord:
    """One ended attempt of a job. The error fields are None when the attempt had none; the
    traceback is bounded as the job's own is (``core.outcomes.MAX_TRACEBACK_CHARS``)."""

    attempt: int
    worker: str | None
    started_at: float | None
    finished_at: float
    outcome: AttemptOutcome
    error_type: str | None = None
    error_message: str | None = None
    traceback: str | None = None


def appended(
    history: tuple[AttemptRecord, ...], record: AttemptRecord, keep: int = MAX_ATTEMPTS_KEPT
) -> tuple[AttemptRecord, ...]:
    """``history`` with ``record`` at its end, bounded to the last ``keep`` records."""
    return (*history, record)[-keep:]


_KEYS = ("n", "w", "s", "f", "o", "et", "em", "tb")


def to_json(history: tuple[AttemptRecord, ...]) -> str:
    """The JSON array the backends store (short keys: ``n`` attempt, ``w`` worker, ``s``
    started, ``f`` finished, ``o`` outcome, ``et``/``em``/``tb`` the error)."""
    return json.dumps(
        [
            dict(
                zip(
                    _KEYS,
                    (
                        r.attempt,
                        r.worker,
                        r.started_at,
                        r.finished_at,
                        r.outcome.value,
                        r.error_type,
                        r.error_message,
                        r.traceback,
                    ),
                    strict=True,
                )
            )
            for r in history
        ],
        separators=(",", ":"),
    )


def from_json(text: str | bytes | None) -> tuple[tuple[AttemptRecord, ...], bool]:
    """The readable records of a stored history (``()`` for none stored), and whether any of
    it could not be read: the caller logs that and goes on with what was read (a damaged
    history never stops a claim or a read)."""
    if text is None or text in ("", b""):
        return (), False
    try:
        items = json.loads(text)
    except ValueError:
        return (), True
    if isinstance(items, dict) and not items:
        return (), False  # an empty Lua table, as cjson encodes it
    if not isinstance(items, list):
        return (), True
    records = []
    for item in items:
        with contextlib.suppress(ValueError, TypeError, KeyError):
            records.append(_record(item))
    return tuple(records[-MAX_ATTEMPTS_KEPT:]), len(records) != len(items)


def _record(item: Any) -> AttemptRecord:
    if not isinstance(item, dict):
        raise TypeError("an attempt record must be an object")
    attempt, finished, started = item["n"], _time(item["f"]), _time(item.get("s"))
    if not isinstance(attempt, int) or isinstance(attempt, bool) or finished is None:
        raise TypeError("an attempt record needs an integer attempt and a finish time")
    return AttemptRecord(
        attempt,
        _text(item.get("w")),
        started,
        finished,
        AttemptOutcome(item["o"]),
        _text(item.get("et")),
        _text(item.get("em")),
        _text(item.get("tb")),
    )


def _time(value: object) -> float | None:
    """A time as a number, or as the exact text of one (Redis keeps the caller's text)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        return float(value)  # ValueError: an unreadable record
    return None


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None
