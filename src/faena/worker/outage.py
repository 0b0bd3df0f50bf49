"""A broker outage as one worker sees it: when it began, how many calls failed, when it ended.

Every thread that calls the broker (the main loop, the job slots, the heartbeat, the broker
client's own reconnect retries) reports here; the worker logs one line when an outage begins
(``worker.broker_unavailable``), a reminder at most every ``remind_seconds`` while it lasts,
and one line when a call succeeds again (``worker.broker_recovered``), never a line per
failed call. While an outage lasts the worker is not ready (``/readyz`` answers 503).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from faena.brokers.protocol import RetryReporting
from faena.core import events as ev
from faena.worker.events import WorkerEvents

REMIND_SECONDS = 60.0


class Outage:
    def __init__(
        self,
        events: WorkerEvents,
        *,
        monotonic: Callable[[], float] = time.monotonic,
        remind_seconds: float = REMIND_SECONDS,
        flush: Callable[[], None] = lambda: None,
    ) -> None:
        self._events = events
        self._flush = flush  # writes out held log lines (the composition's log sink)
        self._monotonic = monotonic
        self._remind = remind_seconds
        self._lock = threading.Lock()
        self._since: float | None = None  # None: the broker answers
        self._told = 0.0  # when the last line about this outage was logged
        self.failed_calls = 0  # in this outage
        self.in_a_row = 0  # failed calls of the main loop since its last success (it resets)

    @property
    def active(self) -> bool:
        return self._since is not None

    def failed(self, exc: BaseException, *, loop: bool = False) -> None:
        """A broker call failed (or the client retries one); ``loop``: the main loop's."""
        now = self._monotonic()
        with self._lock:
            began = self._since is None
            if began:
                self._since, self._told, self.failed_calls = now, now, 0
            self.failed_calls += 1
            if loop:
                self.in_a_row += 1
            remind = not began and now - self._told >= self._remind
            if remind:
                self._told = now
            since, calls = self._since, self.failed_calls
        assert since is not None
        if began or remind:
            self._events.emit(
                ev.WORKER_BROKER_UNAVAILABLE,
                status="broker_unavailable",
                error_type=type(exc).__name__,
                error_message=str(exc),
                duration_ms=round((now - since) * 1000, 3),
                failed_calls=calls,
            )
            self._flush()  # the main thread may be stuck in the call: write it out now

    def attach(self, broker: object) -> Callable[[], None]:
        """Hear of the retries of ``broker``'s client, if it tells of them; the detach."""
        if not isinstance(broker, RetryReporting):
            return lambda: None
        broker.add_retry_listener(self.failed)
        return lambda: broker.remove_retry_listener(self.failed)

    def succeeded(self) -> None:
        """A broker call succeeded: an outage in progress is over."""
        if self._since is None:  # the usual case: no lock
            return
        now = self._monotonic()
        with self._lock:
            since, self._since = self._since, None
            calls = self.failed_calls
        if since is not None:
            self._events.emit(
                ev.WORKER_BROKER_RECOVERED,
                status="broker_recovered",
                duration_ms=round((now - since) * 1000, 3),
                failed_calls=calls,
            )
            self._flush()
