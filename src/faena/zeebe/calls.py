"""Checking what a Zeebe call asks, and the gRPC status of each refusal (pure).

Every field is checked before anything is claimed or written; a refusal names the field, the
value and the rule, with the status the clients expect: ``INVALID_ARGUMENT`` for bad input,
``NOT_FOUND`` for an unknown or ended job key, ``FAILED_PRECONDITION`` for a job in a state
that does not allow the call.
"""

from __future__ import annotations

import json
from typing import Any

import grpc

from faena.core import payload
from faena.core.jsonlimits import JsonLimitError, check_json_text
from faena.errors import PayloadError

#: the longest lease (``timeout``, ``UpdateJobTimeout``) and retry back-off: 30 days in ms
MAX_MS = 30 * 24 * 3600 * 1000
#: the longest long poll (``requestTimeout``): Zeebe's clients ask for up to a few minutes
MAX_POLL_MS = 30 * 60 * 1000
#: a long poll with ``requestTimeout`` 0 waits this long (Zeebe's gateway default)
DEFAULT_POLL_MS = 10_000
MAX_JOBS = 1000
MAX_RETRIES = 1_000_000
MAX_TEXT = 10_000


class CallError(Exception):
    """A refused call: its gRPC status and the message the client gets."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def invalid(field: str, value: object, rule: str) -> CallError:
    return CallError(
        grpc.StatusCode.INVALID_ARGUMENT,
        f"Expected argument '{field}' {rule}, but got {value!r}",
    )


def text(field: str, value: str, *, required: bool = False) -> str:
    if required and not value:
        raise invalid(field, value, "to be present (a non-empty string)")
    if "\x00" in value:
        raise invalid(field, value, "to contain no NUL character")
    if len(value) > MAX_TEXT:
        raise invalid(field, f"{value[:40]}...", f"to be at most {MAX_TEXT} characters")
    return value


def between(field: str, value: int, low: int, high: int) -> int:
    if not low <= value <= high:
        raise invalid(field, value, f"to be between {low} and {high}")
    return value


def job_key(value: int) -> int:
    if value <= 0:
        raise invalid("jobKey", value, "to be a positive job key (from an activated job)")
    return value


def poll_ms(value: int) -> int | None:
    """How long an ``ActivateJobs`` may wait: ``None`` for no long poll (negative)."""
    if value < 0:
        return None
    if value == 0:
        return DEFAULT_POLL_MS
    return min(value, MAX_POLL_MS)


def variables(field: str, value: str, limit: int) -> str:
    """A variables document: empty, or JSON text of an object, as faena's JSON (limit bytes)."""
    if not value.strip():
        return "{}"
    try:  # measured before json.loads builds the tree
        check_json_text(f"argument '{field}'", value, max_bytes=limit)
    except JsonLimitError as exc:
        raise CallError(grpc.StatusCode.INVALID_ARGUMENT, exc.message) from None
    try:
        doc: Any = json.loads(value)
    except (ValueError, RecursionError) as exc:
        raise invalid(field, value[:80], f"to be a JSON document ({exc})") from None
    if doc is None:
        return "{}"
    if not isinstance(doc, dict):
        raise invalid(field, value[:80], "to be a JSON object")
    try:
        return payload.encode(field, doc, limit)
    except PayloadError as exc:
        raise CallError(grpc.StatusCode.INVALID_ARGUMENT, str(exc)) from None
