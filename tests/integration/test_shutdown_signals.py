"""Stop signals handled without a lock in the handler (``faena.shutdown``)."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from tests.nested_signals import handle_with_signals_inside

from faena.shutdown import STOP_SIGNALS, on_stop_signals


@pytest.fixture
def restore_handlers() -> Iterator[None]:
    saved = {s: signal.getsignal(s) for s in STOP_SIGNALS}
    yield
    for s, handler in saved.items():
        signal.signal(s, handler)


def wait_for(predicate: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_each_signal_is_passed_on_in_order_outside_the_handler(restore_handlers: None) -> None:
    seen: list[tuple[int, str]] = []
    on_stop_signals(lambda n: seen.append((n, threading.current_thread().name)))
    os.kill(os.getpid(), signal.SIGTERM)
    wait_for(lambda: len(seen) == 1)
    os.kill(os.getpid(), signal.SIGINT)
    wait_for(lambda: len(seen) == 2)
    assert seen == [(1, "faena-stop-signals"), (2, "faena-stop-signals")]


def test_a_signal_inside_the_handler_never_deadlocks(restore_handlers: None) -> None:
    """A signal arrives at every call the handler makes, as a second real one may: the
    handler takes no lock, and every signal reaches the callback, in order."""
    seen: list[int] = []
    signals = handle_with_signals_inside(on_stop_signals(seen.append))
    wait_for(lambda: len(seen) == signals)
    assert seen == list(range(1, signals + 1))
