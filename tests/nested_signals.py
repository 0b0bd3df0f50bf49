"""Signals whose handlers run inside another handler, made to happen on purpose.

Python runs a signal's handler on the main thread between two calls, so a second signal can
run its handler inside the first one's. :func:`handle_with_signals_inside` calls ``handler``
once, and again at every call it makes (up to ``most`` times), as signals arriving then
would; on a thread, so that a handler that deadlocks fails the test instead of hanging it.
"""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any

Handler = Callable[[int, FrameType | None], None]


def handle_with_signals_inside(handler: Handler, most: int = 20) -> int:
    """The number of signals handled (the first and those inside it); fails if it hangs."""
    left = [most]

    def another_signal(frame: Any, event: str, arg: Any) -> None:
        if event in ("call", "c_call") and left[0] > 0:
            left[0] -= 1
            handler(signal.SIGTERM, None)

    def handle_one() -> None:
        sys.setprofile(another_signal)
        try:
            handler(signal.SIGTERM, None)
        finally:
            sys.setprofile(None)

    t = threading.Thread(target=handle_one, daemon=True)
    t.start()
    t.join(5)
    assert not t.is_alive(), "the handler deadlocked on a signal that came inside it"
    handled = 1 + most - left[0]
    assert handled > 1, "signals did come inside the handler"
    return handled
