"""How deep and how large a JSON text is, measured before it is parsed.

``json.loads`` builds the whole tree, recursing once a level in C, before anything can look at
it: a body of 10,000 nested arrays costs that recursion and every list. :func:`nesting_past`
scans the text instead, with bytes methods that run in C: no Python loop over the characters,
no tree, no recursion. Every entry point that parses JSON it was sent (the HTTP bodies of
:mod:`faena.web.body`, Camunda ``Json`` variables, ``faena enqueue --args/--kwargs``) calls
:func:`check_json_text` first, with one limit: :data:`MAX_JSON_DEPTH`.
"""

from __future__ import annotations

import re
from itertools import accumulate

#: objects and arrays nested deeper than this are refused
MAX_JSON_DEPTH = 64

# every byte but a bracket is deleted, and braces become square brackets
_SQUARE = bytes.maketrans(b"{}", b"[]")
_NOT_BRACKET = bytes(sorted(set(range(256)) - set(b"[]{}")))
_RUNS = re.compile(rb"\[+|\]+")
_OPEN = ord("[")
#: each pass removes a level of every branch; after them a 2 MB text has at most ~230,000 runs
_PASSES = 8


class JsonLimitError(ValueError):
    """A JSON text refused before it was parsed: ``reason`` is ``"depth"`` or ``"size"``."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


def nesting_past(text: str | bytes, max_depth: int = MAX_JSON_DEPTH) -> int | None:
    """How deep ``text`` nests arrays and objects if that is deeper than ``max_depth``, else
    ``None``. Brackets inside strings do not count; an opening bracket never closed counts
    (a parser would have recursed into it before it found the text truncated).

    No Python loop runs over the characters: escapes are removed and the text is split at its
    quotes (every other piece is inside a string), everything but brackets is removed by
    :meth:`bytes.translate`, a few passes of :meth:`bytes.replace` remove the innermost
    ``[]`` pairs (one level each, and most of a wide document), and what is left is counted
    a run of brackets at a time."""
    raw = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text
    if raw.count(b"[") + raw.count(b"{") <= max_depth:
        return None
    # escapes go first (an escaped backslash, then an escaped quote), then every other piece
    # between quotes is the inside of a string
    unescaped = raw.replace(b"\\\\", b"").replace(b'\\"', b"")
    outside = b"".join(unescaped.split(b'"')[0::2])
    brackets = outside.translate(_SQUARE, _NOT_BRACKET)
    passes = 0
    while passes < _PASSES:
        shorter = brackets.replace(b"[]", b"")
        if shorter == brackets:
            break
        brackets = shorter
        passes += 1
    steps = (len(run) if run[0] == _OPEN else -len(run) for run in _RUNS.findall(brackets))
    depth = passes + max(accumulate(steps), default=0)
    return depth if depth > max_depth else None


def check_json_text(
    what: str, text: str | bytes, *, max_bytes: int | None = None, max_depth: int = MAX_JSON_DEPTH
) -> None:
    """Refuse ``text`` (named ``what`` in the message) past ``max_bytes`` bytes of UTF-8 or
    nested deeper than ``max_depth``, as :class:`JsonLimitError`; it is never parsed here."""
    if max_bytes is not None:
        size = len(text) if isinstance(text, bytes) else len(text.encode("utf-8", "replace"))
        if size > max_bytes:
            raise JsonLimitError(
                "size",
                f"{what} is {size} bytes, over the limit of {max_bytes} bytes; send less, or "
                f"store the data elsewhere (a file, an object store) and pass its key",
            )
    depth = nesting_past(text, max_depth)
    if depth is not None:
        raise JsonLimitError(
            "depth",
            f"{what} is nested deeper than the limit of {max_depth} levels of arrays and "
            f"objects ({depth} levels); flatten it, or send the deep part as a string or as "
            f"the key of data stored elsewhere",
        )
