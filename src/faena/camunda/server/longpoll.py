"""Long polling for ``fetchAndLock``: wait on the broker's wakers, not on a sleep loop.

One broker waker per topic is opened on first use and shared by every pending request for
that topic; its descriptor is watched by the event loop (``add_reader``), so a thousand
waiting requests cost no threads and no polling. A wait also ends when a delayed job of the
topics comes due (``next_run_at``: a failed task's ``retryTimeout``), and at the latest after
:data:`SAFETY_SECONDS`, the same safety net the native worker keeps, which also catches a
lock that expired without anyone signalling it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

from faena.brokers.protocol import Broker, Waker

SAFETY_SECONDS = 5.0
#: topics with their own waker at most; requests for further topics use the safety net only
MAX_WAKERS = 256

_log = logging.getLogger("faena.camunda")


class Signal:
    """Set when work may have arrived for one waiting request (or its client went away)."""

    def __init__(self) -> None:
        self.event = asyncio.Event()
        self.gone = False

    async def wait(self, timeout: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.event.wait(), timeout)


class WakeHub:
    def __init__(self, broker_of: Callable[[], Broker]) -> None:
        self._broker_of = broker_of
        self._wakers: dict[str, Waker] = {}
        self._waiting: dict[str, set[Signal]] = {}
        self._lock = asyncio.Lock()
        self._closed = False

    async def _ensure(self, topic: str) -> None:
        if topic in self._wakers or len(self._wakers) >= MAX_WAKERS or self._closed:
            return
        async with self._lock:
            if topic in self._wakers or self._closed:
                return
            waker = await asyncio.to_thread(lambda: self._broker_of().waker([topic]))
            asyncio.get_running_loop().add_reader(waker.fileno(), self._ready, topic, waker)
            self._wakers[topic] = waker

    def _ready(self, topic: str, waker: Waker) -> None:
        waker.drain()
        for signal in self._waiting.get(topic, ()):
            signal.event.set()

    @contextlib.asynccontextmanager
    async def listen(self, topics: Sequence[str]) -> AsyncIterator[Signal]:
        """Register a :class:`Signal` for ``topics`` (wakers are open before this yields, so
        work that arrives after it is never missed)."""
        signal = Signal()
        for topic in topics:
            await self._ensure(topic)
            self._waiting.setdefault(topic, set()).add(signal)
        try:
            yield signal
        finally:
            for topic in topics:
                waiting = self._waiting.get(topic)
                if waiting is not None:
                    waiting.discard(signal)

    def wake_all(self) -> None:
        """Make every pending long poll look again (used at shutdown)."""
        for signals in self._waiting.values():
            for signal in signals:
                signal.gone = True
                signal.event.set()

    def close(self) -> None:
        self._closed = True
        self.wake_all()
        loop: Any = None
        with contextlib.suppress(RuntimeError):
            loop = asyncio.get_running_loop()
        for waker in self._wakers.values():
            if loop is not None:
                with contextlib.suppress(Exception):
                    loop.remove_reader(waker.fileno())
            with contextlib.suppress(Exception):
                waker.close()
        self._wakers.clear()
