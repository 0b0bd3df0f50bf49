"""Job payloads are JSON only, validated and size-bounded."""

from __future__ import annotations

import json
import math
import re
import sys
from typing import Any

from faena.errors import PayloadError

DEFAULT_MAX_PAYLOAD_BYTES = 1024 * 1024


_JSON_TYPES = "str, int, float, bool, None, list (or tuple), dict with str keys"


def _reject(kind: str, value: object, exc: Exception, str_keys: bool) -> PayloadError:
    found = _first_problem(kind, value, str_keys)
    what = f"{found[0]} {found[1]}" if found else f"got {type(value).__name__}: {exc}"
    return PayloadError(
        f"{kind} must be JSON-serializable ({_JSON_TYPES}); {what}. Pass plain data such "
        f"as ids or ISO dates instead of objects."
    )


#: an object key as the encoder may have written an int, float, bool or None key (a string
#: followed by ':' is a key); a str key that reads like one ("3", "2026-11-27") only costs a
#: walk that finds nothing
_CONVERTED_KEY = re.compile(r'"(?:[-0-9][-0-9.eE+]*|true|false|null)":')

# one encoder for every payload: json.dumps with options builds a new one on each call
_compact = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode


def encode(
    kind: str, value: object, max_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES, *, str_keys: bool = False
) -> str:
    """Serialize ``value`` to compact JSON, refusing non-JSON data and oversize payloads.

    Tuples are arrays (they come back as lists). With ``str_keys`` (job arguments), a dict
    key that is not a string is refused, at any depth, instead of becoming one; without it
    (results) JSON's own rule holds: int, float, bool and None keys become strings."""
    if not value and type(value) in (list, tuple, dict):
        return "{}" if type(value) is dict else "[]"
    try:
        text = _compact(value)
    except RecursionError:
        raise PayloadError(
            f"{kind} is nested too deeply to encode (more than about "
            f"{sys.getrecursionlimit()} levels of lists and dicts); flatten it, or store it "
            f"elsewhere and pass its key"
        ) from None
    except (TypeError, ValueError) as exc:
        raise _reject(kind, value, exc, str_keys) from None
    # the encoder writes int, float, bool and None keys as text: the payload is walked only
    # if its JSON has an object key that reads like one
    if str_keys and "{" in text and _CONVERTED_KEY.search(text):
        found = _first_problem(kind, value, str_keys)
        if found is not None:
            raise PayloadError(
                f"{kind} must be JSON-serializable ({_JSON_TYPES}); {found[0]} {found[1]}"
            )
    if text.isascii():
        size = len(text)
    else:
        try:
            size = len(text.encode("utf-8"))
        except UnicodeEncodeError:
            found = _first_problem(kind, value, str_keys)
            where = f"{found[0]} {found[1]}" if found else "it has a lone surrogate"
            raise PayloadError(
                f"{kind} must be valid Unicode text to be stored as UTF-8; {where}"
            ) from None
    if size > max_bytes:
        raise PayloadError(
            f"{kind} is {size} bytes of JSON, over the limit of {max_bytes} bytes. Store large "
            f"data elsewhere (a file, a table, object storage) and pass its key, or raise "
            f"max_payload_bytes on the App."
        )
    return text


def _utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


#: where an item is: ``(where its container is, its index or key)``; ``None`` for the top
_Where = tuple["_Where", object] | None


def _path(kind: str, where: _Where) -> str:
    steps: list[str] = []
    while where is not None:
        where, step = where
        steps.append(f"[{step!r}]")
    return kind + "".join(reversed(steps))


def _bad_key(item: dict[Any, Any], str_keys: bool) -> tuple[object, str] | None:
    for key in item:
        if isinstance(key, str):
            if not key.isascii() and not _utf8(key):
                return key, "has a key with a lone surrogate (not valid Unicode)"
        elif str_keys or not (key is None or isinstance(key, int | float)):
            return key, (
                f"has a key of type {type(key).__name__}: JSON object keys are strings; "
                f"convert it (str(key)) or use a list of pairs"
            )
    return None


def _first_problem(kind: str, value: object, str_keys: bool) -> tuple[str, str] | None:
    """Where the first value JSON cannot carry is, as ``args[0]['a'][3]``, and what it is;
    ``None`` if there is none. One walk, without recursion (a deep payload is no error
    here), that stops at a container inside itself."""
    stack: list[tuple[object, _Where, bool]] = [(value, None, False)]
    inside: set[int] = set()  # the containers on the path to the item
    while stack:
        item, where, leaving = stack.pop()
        if leaving:
            inside.discard(id(item))
        elif isinstance(item, str):
            if not item.isascii() and not _utf8(item):
                return _path(kind, where), "is a string with a lone surrogate (not valid Unicode)"
        elif item is None or isinstance(item, int):
            continue
        elif isinstance(item, float):
            if not math.isfinite(item):
                return _path(kind, where), f"is {item!r}, which JSON has no number for"
        elif isinstance(item, list | tuple | dict):
            if id(item) in inside:
                return _path(kind, where), "is a circular reference (a container inside itself)"
            inside.add(id(item))
            stack.append((item, where, True))
            if isinstance(item, dict):
                bad = _bad_key(item, str_keys)
                if bad is not None:
                    return _path(kind, (where, bad[0])), bad[1]
                stack.extend((c, (where, k), False) for k, c in reversed(item.items()))
            else:
                stack.extend((item[i], (where, i), False) for i in range(len(item) - 1, -1, -1))
        else:
            return _path(kind, where), f"is of type {type(item).__name__}, which is not JSON"
    return None


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
