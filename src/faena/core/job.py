"""Job records as every broker returns them, and what enqueue asks for."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field, replace
from typing import Any

from faena.core.attempts import AttemptRecord
from faena.core.frozen import quick_init
from faena.core.pools import DEFAULT_POOL
from faena.core.states import JobState


def new_job_id() -> str:
    """A UUIDv7 (RFC 9562) as 32 hex digits: time-ordered, so new ids append to indexes
    instead of landing at random places in them. 48 bits of Unix milliseconds, the version
    (7), 12 random bits, the variant (0b10), 62 random bits."""
    return _uuid7(_now_ms(), os.urandom(10), 0)


def new_job_ids(n: int) -> list[str]:
    """``n`` ids as :func:`new_job_id` makes them, from one read of the system's random
    source (for a bulk enqueue)."""
    ms, r = _now_ms(), os.urandom(10 * n)
    return [_uuid7(ms, r, i) for i in range(0, 10 * n, 10)]


def _now_ms() -> bytes:
    return ((time.time_ns() // 1_000_000) & 0xFFFF_FFFF_FFFF).to_bytes(6, "big")


def _uuid7(ms: bytes, r: bytes, i: int) -> str:
    """The id of 48-bit milliseconds ``ms`` and the 10 random bytes of ``r`` at ``i``."""
    head = bytes((0x70 | (r[i] & 0x0F), r[i + 1], 0x80 | (r[i + 2] & 0x3F)))
    return (ms + head + r[i + 3 : i + 10]).hex()


@dataclass(frozen=True, slots=True)
class ErrorInfo:
    """What ended an attempt. Text every store can keep: a NUL (PostgreSQL cannot) is written
    ``\\x00`` and a lone surrogate (no store can encode it) ``\\udXXX``, on every backend."""

    type: str
    message: str
    traceback: str = ""

    def __post_init__(self) -> None:
        for name in ("type", "message", "traceback"):
            text = getattr(self, name)
            if isinstance(text, str) and not (text.isascii() and "\0" not in text):
                object.__setattr__(self, name, storable_text(text))


def storable_text(text: str) -> str:
    """``text`` with NUL and lone surrogates spelled as escapes (other text unchanged)."""
    text = text.replace("\0", "\\x00")
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


@dataclass(frozen=True, slots=True)
class NewJob:
    """A job to enqueue. ``args_json``/``kwargs_json`` are already validated JSON text."""

    task: str
    queue: str
    args_json: str = "[]"
    kwargs_json: str = "{}"
    id: str = field(default_factory=new_job_id)
    priority: int = 0
    pool: str = DEFAULT_POOL
    pool_slots: int = 1
    max_attempts: int = 4
    timeout: float | None = None
    run_at: float | None = None  # None: now
    idempotency_key: str | None = None


@quick_init  # built for every job a worker claims
@dataclass(frozen=True, slots=True)
class Job:
    """One job's stored record.

    ``attempt`` counts claims and is the fencing token: it only ever grows. ``tries`` counts
    attempts that were consumed: a release gives one back, a manual retry resets it.
    ``attempts`` is the story of the ended attempts (only ``Broker.get`` fills it in).
    """

    id: str
    task: str
    queue: str
    args_json: str
    kwargs_json: str
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
    run_at: float
    started_at: float | None = None
    finished_at: float | None = None
    lease_expires_at: float | None = None
    worker: str | None = None
    result_json: str | None = None
    error: ErrorInfo | None = None
    cancel_requested: bool = False
    #: the ended attempts, oldest first (the last ``core.attempts.MAX_ATTEMPTS_KEPT``); read
    #: by ``get`` on every backend, left empty by claims and listings (the hot paths)
    attempts: tuple[AttemptRecord, ...] = ()

    @property
    def args(self) -> list[Any]:
        import json

        value: list[Any] = json.loads(self.args_json)
        return value

    @property
    def kwargs(self) -> dict[str, Any]:
        import json

        value: dict[str, Any] = json.loads(self.kwargs_json)
        return value

    @property
    def result(self) -> Any:
        import json

        return None if self.result_json is None else json.loads(self.result_json)

    def evolve(self, **changes: Any) -> Job:
        return replace(self, **changes)


@quick_init
@dataclass(frozen=True, slots=True)
class Lease:
    """A worker's hold on one attempt of a job: what every fenced write names."""

    job_id: str
    attempt: int


@quick_init
@dataclass(frozen=True, slots=True)
class Outcome:
    """The end of one attempt, reported by a worker (fenced by ``attempt``).

    ``state`` is ``succeeded``, ``failed`` (retry at ``retry_at``), ``dead`` or ``cancelled``.
    """

    job_id: str
    attempt: int
    state: JobState
    result_json: str | None = None
    error: ErrorInfo | None = None
    retry_at: float | None = None
    #: set the job's budget of attempts (Camunda's ``retries`` + attempts made); None: keep
    max_attempts: int | None = None

    @property
    def lease(self) -> Lease:
        return Lease(self.job_id, self.attempt)
