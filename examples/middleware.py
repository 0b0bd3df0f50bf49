"""Two middleware of docs/middleware.md: a claim rate limit and a timing span.

Run a worker with them::

    app = faena.App("sqlite:///faena.db", middleware=[Timing(), ClaimRateLimit(per_second=5)])
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from typing import TypeVar

from faena.core.job import Job
from faena.core.middleware import Middleware

T = TypeVar("T")
log = logging.getLogger("myapp.timing")


class ClaimRateLimit(Middleware):
    """At most ``per_second`` jobs claimed per second by this worker (a token bucket that
    holds ``burst`` tokens, ``per_second`` by default). ``clock()`` gives seconds (monotonic)."""

    def __init__(
        self,
        per_second: float,
        *,
        burst: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if per_second <= 0:
            raise ValueError(f"per_second must be > 0, got {per_second}")
        self.rate = per_second
        self.burst = float(burst if burst is not None else per_second)
        self._now = clock
        self._tokens = self.burst
        self._at = self._now()
        self._lock = threading.Lock()  # turns may run on several slot threads

    def before_claim(self, queues: Sequence[str], limit: int) -> int:
        with self._lock:
            now = self._now()
            self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
            self._at = now
            granted = min(limit, int(self._tokens))
            self._tokens -= granted
            return granted  # 0: this turn claims nothing; the worker asks again soon


class Timing(Middleware):
    """A span around each job's call: its wall time in a log line (swap in an OpenTelemetry
    ``tracer.start_as_current_span(job.task)`` for a trace)."""

    def __init__(self) -> None:
        self.spans: list[tuple[str, float, bool]] = []  # (job id, seconds, raised)

    @contextlib.contextmanager
    def _span(self, job: Job) -> Iterator[None]:
        started = time.perf_counter()
        raised = True
        try:
            yield
            raised = False
        finally:
            seconds = time.perf_counter() - started
            self.spans.append((job.id, seconds, raised))
            log.info("job %s (%s) took %.3f s", job.id, job.task, seconds)

    def around_execute(self, job: Job, call: Callable[[], T]) -> T:
        with self._span(job):
            return call()

    async def around_execute_async(self, job: Job, call: Callable[[], Awaitable[T]]) -> T:
        with self._span(job):
            return await call()
