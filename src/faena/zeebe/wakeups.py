"""Wake-ups for the gateway's long polls and streams: one broker waker per job type, shared.

A broker waker can be dear (PostgreSQL's holds a LISTEN connection and a thread), so a long
poll does not open its own: the first call for a type opens one, a single thread watches
them all and bumps the type's generation on each wake-up. A call notes the generation
*before* it claims; if the claim finds nothing it waits for the generation to move, so work
that arrives between the claim and the wait is never missed. Types beyond
:data:`MAX_WAKERS` get no waker: their calls look again on the safety net only.
"""

from __future__ import annotations

import contextlib
import logging
import os
import selectors
import threading
from collections.abc import Callable

from faena.brokers.protocol import Broker, Waker

MAX_WAKERS = 256
_log = logging.getLogger("faena.zeebe")


class Wakeups:
    def __init__(self, broker_of: Callable[[], Broker]) -> None:
        self._broker_of = broker_of
        self._wakers: dict[str, Waker] = {}
        self._generation: dict[str, int] = {}
        self._changed = threading.Condition()
        self._selector = selectors.DefaultSelector()
        self._stop_r, self._stop_w = os.pipe()
        self._selector.register(self._stop_r, selectors.EVENT_READ, None)
        self._closed = False
        self._thread = threading.Thread(target=self._loop, name="faena-zeebe-wakeups", daemon=True)
        self._thread.start()

    def generation(self, queue: str) -> int:
        """The wake-up count of ``queue`` now (its waker is open once this returns)."""
        with self._changed:
            if queue not in self._wakers and len(self._wakers) < MAX_WAKERS and not self._closed:
                waker = self._broker_of().waker([queue])
                self._wakers[queue] = waker
                self._selector.register(waker.fileno(), selectors.EVENT_READ, queue)
                os.write(self._stop_w, b"r")  # the loop selects again, with the new descriptor
            return self._generation.get(queue, 0)

    def watched(self) -> frozenset[str]:
        """The job types with a waker open (a call for them waits, or waited)."""
        with self._changed:
            return frozenset(self._wakers)

    def wait(self, queue: str, seen: int, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for a wake-up of ``queue`` after ``seen``."""
        with self._changed:
            return self._changed.wait_for(
                lambda: self._closed or self._generation.get(queue, 0) != seen, timeout
            )

    def _loop(self) -> None:
        while not self._closed:
            for key, _ in self._selector.select():
                queue = key.data
                if queue is None:
                    with contextlib.suppress(BlockingIOError):
                        os.read(self._stop_r, 4096)
                    continue
                with self._changed:
                    waker = self._wakers.get(queue)
                    if waker is None:
                        continue
                    try:
                        waker.drain()
                    except Exception as exc:  # a waker that broke: its type uses the safety net
                        _log.warning(
                            f"zeebe wake-ups of {queue} failed: {exc}",
                            extra={"event": "zeebe.waker_failed", "queue": queue},
                        )
                        self._selector.unregister(waker.fileno())
                    self._generation[queue] = self._generation.get(queue, 0) + 1
                    self._changed.notify_all()

    def close(self) -> None:
        with self._changed:
            self._closed = True
            self._changed.notify_all()
        os.write(self._stop_w, b"x")
        self._thread.join(5)
        for waker in self._wakers.values():
            with contextlib.suppress(Exception):
                waker.close()
        self._wakers.clear()
        self._selector.close()
        os.close(self._stop_r)
        os.close(self._stop_w)
