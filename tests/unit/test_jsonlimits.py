"""The JSON depth scan of :mod:`faena.core.jsonlimits`: right on the edges, and cheap: no
Python recursion, no tree, and json.loads never runs on a text past the limit."""

from __future__ import annotations

import json
import sys
import tracemalloc
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from faena.camunda import variables
from faena.core.jsonlimits import MAX_JSON_DEPTH, JsonLimitError, check_json_text, nesting_past
from faena.web import body


def nested(levels: int) -> str:
    return "[" * levels + "]" * levels


@pytest.mark.parametrize(
    ("text", "depth"),
    [
        (nested(64), None),
        (nested(65), 65),
        ('{"a":' * 70 + "1" + "}" * 70, 70),
        ("[" * 65, 65),  # never closed: a parser would have recursed into it
        ('["' + "[" * 100 + '"]', None),  # brackets inside a string
        ('["\\"' + "[" * 100 + '"]', None),  # an escaped quote does not end the string
        ('["\\\\", ' + nested(70) + "]", 71),  # an escaped backslash does
        ('"' + "[" * 100, None),  # an unterminated string swallows the rest
        ("[[]," * 70 + "]" * 70, 71),  # siblings do not hide the depth
        ("[1,[]]" * 1000, None),  # wide, not deep
        ("]" * 100, None),
    ],
)
def test_the_depth_is_measured_on_the_text(text: str, depth: int | None) -> None:
    assert nesting_past(text) == depth
    assert nesting_past(text.encode()) == depth


json_values = st.recursive(
    st.none() | st.integers() | st.text(alphabet='[]{}"\\ab', max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner),
    max_leaves=30,
)


def depth_of(value: Any) -> int:
    if isinstance(value, list):
        return 1 + max(map(depth_of, value), default=0)
    if isinstance(value, dict):
        return 1 + max(map(depth_of, value.values()), default=0)
    return 0


@given(json_values, st.integers(min_value=0, max_value=6))
def test_the_scan_agrees_with_the_parsed_depth(value: Any, limit: int) -> None:
    text = json.dumps(value)
    depth = depth_of(value)
    assert nesting_past(text, limit) == (depth if depth > limit else None)


def test_a_deep_body_is_refused_without_recursion_or_a_tree(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    deep = nested(1_000_000).encode()  # 2 MB: as a tree, a million lists
    calls: list[str] = []
    monkeypatch.setattr(body.json, "loads", lambda *a, **k: calls.append("loads"))
    frame, frames = sys._getframe(), 0
    while frame is not None:
        frame, frames = frame.f_back, frames + 1  # type: ignore[assignment]
    limit = sys.getrecursionlimit()
    tracemalloc.start()
    try:
        sys.setrecursionlimit(frames + 40)  # the scan may not recurse
        with pytest.raises(body.BodyError) as refused:
            body.parse_json(deep)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        sys.setrecursionlimit(limit)
        tracemalloc.stop()
    assert calls == []
    assert refused.value.status == 400
    assert f"limit of {MAX_JSON_DEPTH} levels" in refused.value.message
    assert "(1000000 levels)" in refused.value.message and "flatten it" in refused.value.message
    assert peak < 8 * len(deep), peak  # copies of the text; a tree would be ~60 MB


def test_a_json_variable_is_measured_before_it_is_parsed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(variables.json, "loads", lambda *a, **k: pytest.fail("parsed"))
    with pytest.raises(variables.VariableError, match=r"variable 'doc' of type Json .*10000"):
        variables.to_plain("doc", {"type": "Json", "value": nested(10_000)})


def test_size_is_bytes_of_utf8() -> None:
    check_json_text("x", '"é"', max_bytes=4)
    with pytest.raises(JsonLimitError, match="x is 6 bytes, over the limit of 4 bytes") as exc:
        check_json_text("x", '"éé"', max_bytes=4)
    assert exc.value.reason == "size"
