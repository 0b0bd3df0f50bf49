"""How the dispatcher sleeps: on the broker's waker and the executors' inbox (no polling),
writing out held log lines first and, while slots run and log on their own threads, every
``LOG_FLUSH_SECONDS`` meanwhile. Results whose report may wait (put "later" by slots that
started a prefetched job) end the sleep at the first of those steps that finds them."""

from __future__ import annotations

import select
import time
from collections.abc import Callable
from typing import Any

from faena.worker.results import Completions

# Slots that take their own turns leave their log lines held by the log handler (one write
# per 4 KiB, not per job); while they run, the sleeping main thread writes what is held at
# least this often, so a line is never held longer.
LOG_FLUSH_SECONDS = 0.1


def sleep_on(
    fds: list[Any],
    timeout: float,
    inbox: Completions,
    flush: Callable[[], None],
    slots_log: Callable[[], bool],
) -> list[Any]:
    """Sleep until one of ``fds`` is readable or ``timeout`` passes (``inbox`` is always
    among them); the readable ones. ``slots_log()``: whether slots write lines meanwhile."""
    if timeout <= 0:
        return []
    if not inbox.arm():
        return [inbox]
    flush()
    readable: list[Any] = []
    end = time.monotonic() + timeout
    try:
        while True:
            step = end - time.monotonic()
            if step > LOG_FLUSH_SECONDS and (slots_log() or inbox.later()):
                step = LOG_FLUSH_SECONDS
            if step <= 0:
                break
            readable, _, _ = select.select(fds, [], [], step)
            if readable:
                break
            flush()
            if inbox.later():  # reports held back that long: the turn is due
                break
    except InterruptedError:
        pass
    finally:
        inbox.disarm(inbox in readable)
    return readable
