"""Request bodies read safely: bounded in size before they are read, then parsed as JSON that
every store can keep.

One reader for every route that takes a body (the Camunda routes under ``/engine-rest``; the
``/api/v1`` routes take none yet). It refuses, as :class:`BodyError` with the HTTP status to
answer:

* a body larger than the limit: ``413``, from ``Content-Length`` before anything is read, or
  once the streamed body passes the limit (chunked or lying ``Content-Length``); at most the
  limit plus one ASGI chunk is ever held in memory;
* JSON nested deeper than :data:`~faena.core.jsonlimits.MAX_JSON_DEPTH`, measured on the
  text before it is parsed (:func:`~faena.core.jsonlimits.check_json_text`: no tree is built
  and nothing recurses): ``400``;
* JSON that is malformed, not UTF-8, holds
  ``NaN``/``Infinity`` or a number that overflows a float (``1e400``), or a string with a lone
  UTF-16 surrogate (``"\\ud800"``: no UTF-8 store can keep it): ``400``.
"""

from __future__ import annotations

import json
import math
from typing import Any

from starlette.requests import ClientDisconnect, Request

from faena.core.jsonlimits import JsonLimitError, check_json_text
from faena.core.payload import DEFAULT_MAX_PAYLOAD_BYTES
from faena.errors import FaenaError

#: room for the JSON around a payload (typed variables, field names, base64)
BODY_OVERHEAD_BYTES = 1024 * 1024


class BodyError(FaenaError, ValueError):
    """A request body faena refuses; ``status`` is the HTTP status to answer (400 or 413)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def default_limit(max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES) -> int:
    """The body limit of a server whose payloads may be ``max_payload_bytes`` large."""
    return BODY_OVERHEAD_BYTES + max_payload_bytes


def _too_large(limit: int, seen: str) -> BodyError:
    return BodyError(
        413,
        f"the request body is larger than the server's limit of {limit} bytes ({seen}); "
        f"send a smaller body, or start the server with a larger payload limit",
    )


async def read_body(request: Request, limit: int) -> bytes:
    """The raw body, read in chunks from the ASGI stream and refused past ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            size = int(declared)
        except ValueError:
            raise BodyError(400, f"Content-Length {declared!r} is not a number") from None
        if size > limit:
            raise _too_large(limit, f"Content-Length is {size}")
    chunks: list[bytes] = []
    total = 0
    try:
        async for chunk in request.stream():
            total += len(chunk)
            if total > limit:
                raise _too_large(limit, f"more than {limit} bytes were sent")
            chunks.append(chunk)
    except ClientDisconnect:
        raise BodyError(
            400, f"the client closed the connection after {total} bytes of the body"
        ) from None
    return b"".join(chunks)


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise BodyError(400, f"the number {text[:40]} is too large for a 64-bit float")
    return value


def _no_constant(name: str) -> Any:
    raise BodyError(400, f"{name} is not a JSON number; send a finite number or null")


def _check(value: Any) -> None:
    """Every string and key of a parsed body, walked without recursion (its depth was
    measured on the text already, before parsing)."""
    stack: list[Any] = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            _check_text(item)
        elif isinstance(item, dict):
            for key, child in item.items():
                _check_text(key)
                stack.append(child)
        elif isinstance(item, list):
            stack.extend(item)


def _check_text(text: str) -> None:
    if text.isascii():
        return
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        bad = text[exc.start : exc.end].encode("utf-8", "backslashreplace").decode("ascii")
        before = text[max(exc.start - 20, 0) : exc.start].encode("utf-8", "replace").decode()
        where = f" after {before!r}" if before else ""
        raise BodyError(
            400,
            f"a string in the JSON body holds a lone UTF-16 surrogate {bad}{where}; send "
            f"valid Unicode (a surrogate must be half of a pair)",
        ) from None


def parse_json(raw: bytes) -> Any:
    """Parse a body; an empty body is ``None``; anything refused is a :class:`BodyError`."""
    if not raw.strip():
        return None
    try:
        text = raw.decode(json.detect_encoding(raw))
    except UnicodeDecodeError as exc:
        raise BodyError(400, f"the request body is not valid Unicode text: {exc}") from None
    try:  # the depth is measured on the text: json.loads would build the tree first
        check_json_text("the JSON body", text)
    except JsonLimitError as exc:
        raise BodyError(400, exc.message) from None
    try:
        value = json.loads(text, parse_float=_finite_float, parse_constant=_no_constant)
    except BodyError:
        raise
    except ValueError as exc:  # JSONDecodeError, and ints past Python's 4300 digits
        raise BodyError(400, f"the request body is not valid JSON: {exc}") from None
    _check(value)
    return value


async def read_json(request: Request, limit: int) -> Any:
    """:func:`read_body` then :func:`parse_json`."""
    return parse_json(await read_body(request, limit))
