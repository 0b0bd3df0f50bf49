"""Job payloads are JSON only, validated and size-bounded."""

from __future__ import annotations

import json
from typing import Any

from faena.errors import PayloadError

DEFAULT_MAX_PAYLOAD_BYTES = 1024 * 1024


def _reject(kind: str, value: object, exc: Exception) -> PayloadError:
    return PayloadError(
        f"{kind} must be JSON-serializable (str, int, float, bool, None, list, dict with "
        f"str keys); got {type(value).__name__}: {exc}. Pass plain data such as ids or ISO "
        f"dates instead of objects."
    )


# one encoder for every payload: json.dumps with options builds a new one on each call
_compact = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode


def encode(kind: str, value: object, max_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES) -> str:
    """Serialize ``value`` to compact JSON, refusing non-JSON data and oversize payloads."""
    if not value and type(value) in (list, tuple, dict):
        return "{}" if type(value) is dict else "[]"
    try:
        text = _compact(value)
    except (TypeError, ValueError) as exc:
        raise _reject(kind, value, exc) from None
    size = len(text.encode("utf-8"))
    if size > max_bytes:
        raise PayloadError(
            f"{kind} is {size} bytes of JSON, over the limit of {max_bytes} bytes. Store large "
            f"data elsewhere (a file, a table, object storage) and pass its key, or raise "
            f"max_payload_bytes on the App."
        )
    return text


def decode(text: str | None) -> Any:
    if text is None:
        return None
    return json.loads(text)


def check_args(args: object, kwargs: object) -> tuple[list[Any] | tuple[Any, ...], dict[str, Any]]:
    """``args`` and ``kwargs`` as given, once they are an array and an object with text keys
    (not copied: they are only encoded)."""
    if not isinstance(args, list | tuple):
        raise PayloadError(f"args must be a JSON array (a list), got {type(args).__name__}")
    if not isinstance(kwargs, dict):
        raise PayloadError(f"kwargs must be a JSON object (a dict), got {type(kwargs).__name__}")
    if kwargs and not all(isinstance(k, str) for k in kwargs):
        bad = [k for k in kwargs if not isinstance(k, str)]
        raise PayloadError(f"kwargs keys must be strings, got {bad!r}")
    return args, kwargs
