"""SIGTERM and SIGINT handled without a lock in the handler.

Python runs signal handlers on the main thread, between any two of its calls, so the handler
of a second signal can run inside the first one's (a supervisor passing signals on, a
terminal's Ctrl-C twice). A handler that takes a lock, as ``threading.Event.set`` does, then
waits forever for the lock that the handler it interrupted holds. :func:`on_stop_signals`
installs a handler that only writes a byte to a socket; a thread of its own reads the bytes
and calls back, once per signal, outside any handler. (The job worker needs no relay: its
``Worker.stop`` takes no lock and only pokes its own wake-up socket; the ``--processes``
supervisor's handler only sends signals.)
"""

from __future__ import annotations

import atexit
import contextlib
import signal
import socket
import threading
from collections.abc import Callable, Iterable
from types import FrameType

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
_RELAYS: list[tuple[socket.socket, socket.socket]] = []


@atexit.register
def _close_relays() -> None:
    """The relays serve until the process ends: closed then, not left to the collector."""
    while _RELAYS:
        reader, writer = _RELAYS.pop()
        writer.close()  # the relay thread's read ends
        reader.close()


def on_stop_signals(
    callback: Callable[[int], None], signals: Iterable[int] = STOP_SIGNALS
) -> Callable[[int, FrameType | None], None]:
    """Install handlers of ``signals`` (from the main thread) that call ``callback(n)`` for
    the n-th of them (1, 2, ...) on a daemon thread. Returns the handler (what a test may
    call as the signal would)."""
    reader, writer = socket.socketpair()
    writer.setblocking(False)
    _RELAYS.append((reader, writer))  # they serve until the process ends, never collected

    def handler(signum: int, frame: FrameType | None) -> None:
        with contextlib.suppress(OSError):  # a full buffer: thousands of signals, unread
            writer.send(b"\x01")

    def relay() -> None:
        count = 0
        while data := reader.recv(4096):
            for _ in data:  # a byte per signal
                count += 1
                callback(count)

    threading.Thread(target=relay, name="faena-stop-signals", daemon=True).start()
    for signum in signals:
        signal.signal(signum, handler)
    return handler
