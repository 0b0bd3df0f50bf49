"""The unit tests do no I/O and never sleep (DESIGN.md section 6): a test that sleeps or opens
a network connection fails here, saying where such a test belongs."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from typing import Any

import pytest

MOVE = "move the test to tests/integration (tests/unit does no I/O and never sleeps)"


def _refuse(what: str) -> Callable[..., Any]:
    def refused(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError(f"a unit test called {what}{args!r}: {MOVE}")

    return refused


@pytest.fixture(autouse=True)
def _no_sleep_no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(time, "sleep", _refuse("time.sleep"))
    for method in ("connect", "connect_ex", "bind"):
        monkeypatch.setattr(socket.socket, method, _refuse(f"socket.{method}"))
