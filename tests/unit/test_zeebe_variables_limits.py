"""Zeebe variables documents (``CreateProcessInstance``, ``CompleteJob``...): measured before
they are parsed; too deep or too large is INVALID_ARGUMENT naming the limit."""

from __future__ import annotations

import grpc
import pytest

from faena.zeebe import calls
from faena.zeebe.calls import CallError


def test_deep_variables_are_invalid_argument_before_json_loads(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(calls.json, "loads", lambda *a, **k: pytest.fail("parsed"))
    deep = '{"a":' + "[" * 10_000 + "]" * 10_000 + "}"
    with pytest.raises(CallError) as refused:
        calls.variables("variables", deep, 1024 * 1024)
    assert refused.value.code is grpc.StatusCode.INVALID_ARGUMENT
    assert "limit of 64 levels" in str(refused.value) and "(10001 levels)" in str(refused.value)


def test_oversize_variables_are_invalid_argument() -> None:
    with pytest.raises(CallError) as refused:
        calls.variables("variables", '{"a": "' + "x" * 200 + '"}', 100)
    assert refused.value.code is grpc.StatusCode.INVALID_ARGUMENT
    assert "over the limit of 100 bytes" in str(refused.value)
    assert calls.variables("variables", '{"a": [[1]]}', 100) == '{"a":[[1]]}'
