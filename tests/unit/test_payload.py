"""Job arguments are JSON: anything else is a PayloadError that says where, before a write."""

from __future__ import annotations

import json
from typing import Any

import pytest

from faena import App
from faena.core.payload import encode
from faena.errors import PayloadError


def _deep(levels: int) -> list[Any]:
    value: list[Any] = []
    for _ in range(levels):
        value = [value]
    return value


def test_a_very_deep_list_is_a_payload_error() -> None:
    with pytest.raises(PayloadError, match="nested too deeply") as caught:
        encode("args", [_deep(100_000)], str_keys=True)
    assert not isinstance(caught.value, RecursionError)
    assert caught.value.__suppress_context__  # no RecursionError traceback above it


def test_a_lone_surrogate_is_a_payload_error_naming_where() -> None:
    with pytest.raises(PayloadError, match=r"args\[1\]\['name'\] is a string with a lone"):
        encode("args", [1, {"name": "a\ud800b"}], str_keys=True)
    with pytest.raises(PayloadError, match=r"kwargs\['k\\udc80'\] has a key with a lone"):
        encode("kwargs", {"k\udc80": 1}, str_keys=True)
    with pytest.raises(PayloadError, match=r"result is a string with a lone surrogate"):
        encode("result", "\ud800")  # a task's result too (it ended the worker before)


def test_a_non_str_key_at_any_depth_is_refused_naming_its_path() -> None:
    with pytest.raises(PayloadError, match=r"args\[0\]\['a'\]\[3\] has a key of type int"):
        encode("args", [{"a": {"x": 1, 3: "three"}}], str_keys=True)
    with pytest.raises(PayloadError, match=r"kwargs\['a'\]\[1\]\[None\] has a key of type"):
        encode("kwargs", {"a": [0, {None: 1}]}, str_keys=True)
    with pytest.raises(PayloadError, match=r"args\[0\]\[True\] has a key of type bool"):
        encode("args", [{True: 1}], str_keys=True)
    # keys that only read like numbers are strings: fine
    assert encode("args", [{"3": 1, "true": 2, "1.5": 3, "2026-11-27": 4}], str_keys=True) == (
        '[{"3":1,"true":2,"1.5":3,"2026-11-27":4}]'
    )
    for key in (-7, 10**30, 1e20, -0.0, 2.5, False, None):  # every form the encoder writes
        with pytest.raises(PayloadError, match="has a key of type"):
            encode("kwargs", {"a": [{"b": 1, key: 2}]}, str_keys=True)
    # a result keeps JSON's own rule (int keys become strings)
    assert encode("result", {1: "a"}) == '{"1":"a"}'


def test_a_bad_value_is_named_by_its_own_type_and_path() -> None:
    with pytest.raises(
        PayloadError, match=r"args\[1\]\['tags'\] is of type set, which is not JSON"
    ):
        encode("args", (1, {"tags": {"a", "b"}}), str_keys=True)
    with pytest.raises(PayloadError, match=r"args\[0\]\[1\] is nan"):
        encode("args", [[1, float("nan")]], str_keys=True)
    loop: list[Any] = []
    loop.append(loop)
    with pytest.raises(PayloadError, match=r"args\[0\]\[0\] is a circular reference"):
        encode("args", [loop], str_keys=True)


def test_tuples_are_arrays_and_come_back_as_lists() -> None:
    text = encode("args", (1, (2, 3), {"k": (4,)}), str_keys=True)
    assert json.loads(text) == [1, [2, 3], {"k": [4]}]


def test_enqueue_refuses_bad_payloads_before_writing() -> None:
    app = App(broker="memory://")

    @app.task(name="t")
    def t(*args: Any, **kwargs: Any) -> None:
        return None

    for call in (
        lambda: t.enqueue(_deep(100_000)),
        lambda: t.enqueue("\ud800"),
        lambda: t.enqueue({"a": {1: 2}}),
        lambda: t.enqueue(x={"a": [{2.5: 1}]}),
        lambda: t.enqueue_many([([1], {}), ([{1, 2}], {})]),
    ):
        with pytest.raises(PayloadError):
            call()
    assert app.broker.list_jobs() == []
