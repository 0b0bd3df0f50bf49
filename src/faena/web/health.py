"""``/readyz``: whether the broker answers, on a path of its own.

Requests of the API and of ``/engine-rest`` run their broker calls in the event loop's
default thread pool (a few threads: ``min(32, cores + 4)``). When heavy queries fill it (a
dozen counts over a large store), a probe queued behind them would wait for seconds and
answer 503 although the broker is fine. So the probe runs on a thread of its own, with its own
broker connection (the SQLite store's connections are per thread; a PostgreSQL or Redis call
borrows one from the broker's pool), and concurrent probes share the one in flight: a broker
that does not answer costs one thread, never one per request.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Callable


class Readiness:
    """Runs ``probe`` (a cheap broker call) on a dedicated thread; see the module doc."""

    def __init__(self, probe: Callable[[], object], timeout: float) -> None:
        self._probe = probe
        self.timeout = timeout
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None
        self._inflight: concurrent.futures.Future[object] | None = None
        self._lock = threading.Lock()

    def _start(self) -> concurrent.futures.Future[object]:
        with self._lock:
            if self._executor is None:
                self._executor = concurrent.futures.ThreadPoolExecutor(
                    max_workers=1, thread_name_prefix="faena-readyz"
                )
            if self._inflight is None or self._inflight.done():
                self._inflight = self._executor.submit(self._probe)
            return self._inflight

    async def check(self) -> None:
        """Return once the broker answered; raise its error, or ``TimeoutError`` when the
        probe takes longer than ``timeout`` seconds."""
        future = asyncio.wrap_future(self._start())
        try:
            await asyncio.wait_for(asyncio.shield(future), self.timeout)
        except TimeoutError:
            raise TimeoutError(f"the broker did not answer within {self.timeout:g} s") from None

    def close(self) -> None:
        with self._lock:
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=False, cancel_futures=True)
