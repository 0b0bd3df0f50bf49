"""What an executor reports when a job's attempt ends, and the channel it reports on."""

from __future__ import annotations

import contextlib
import select
import socket
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from faena.core import outcomes
from faena.core.frozen import quick_init
from faena.core.job import ErrorInfo, Job, Outcome

if TYPE_CHECKING:
    import random

    from faena.worker.ledger import Running


@quick_init
@dataclass(frozen=True, slots=True)
class RunResult:
    job: Job
    duration: float
    result_json: str | None = None
    error: ErrorInfo | None = None
    retryable: bool = True
    timed_out: bool = False
    cancelled: bool = False

    @property
    def ok(self) -> bool:
        return self.error is None and not self.cancelled


class Completions:
    """A thread-safe inbox with a descriptor that turns readable when results arrive.

    The descriptor is only written while the dispatcher sleeps (between :meth:`arm` and
    :meth:`disarm`): a result that arrives while it is busy is simply taken at its next
    :meth:`take_all`, without a system call on either side. A result put with
    :meth:`put_later` wakes nobody and does not keep the dispatcher awake: it goes with the
    next turn, which a later result or the dispatcher's own timeout starts.
    """

    def __init__(self) -> None:
        self._items: deque[RunResult] = deque()
        self._later: deque[RunResult] = deque()
        self._r, self._w = socket.socketpair()
        self._r.setblocking(False)
        self._w.setblocking(False)
        self._sleeping = False

    def fileno(self) -> int:
        return self._r.fileno()

    def put(self, item: RunResult) -> None:
        self._items.append(item)
        self.wake()

    def put_quiet(self, item: RunResult) -> None:
        """Add a result that the caller itself is about to take: nobody is woken."""
        self._items.append(item)

    def put_later(self, item: RunResult) -> None:
        """Add a result whose report may wait for the next turn (the caller knows one comes
        soon): the dispatcher is not woken, and it may go to sleep with the result waiting
        (:meth:`later` tells it that one does)."""
        self._later.append(item)

    def later(self) -> bool:
        """Whether results put with :meth:`put_later` wait."""
        return bool(self._later)

    def wake(self) -> None:
        """Wake the dispatcher if it sleeps, so it looks again at how long to sleep."""
        if self._sleeping:
            self.poke()

    def poke(self) -> None:
        """Wake the dispatcher (also used to make it look at a stop request)."""
        with contextlib.suppress(OSError):
            self._w.send(b"\x01")

    def arm(self) -> bool:
        """The dispatcher is about to sleep on the descriptor: True if it should not (results
        are waiting already). The flag is set before the inbox is looked at, so a result
        put in between is seen here or pokes the descriptor."""
        self._sleeping = True
        if self._items:
            self._sleeping = False
            return False
        return True

    def disarm(self, readable: bool) -> None:
        """The dispatcher woke up; ``readable`` if the descriptor was among the reasons."""
        self._sleeping = False
        if readable:
            with contextlib.suppress(OSError):
                while self._r.recv(4096):
                    pass

    def pause(self, seconds: float, cut_short: Callable[[], bool]) -> None:
        """Sleep ``seconds`` whatever arrives (a back-off): results wait for the next
        :meth:`take_all`; only a :meth:`poke` after which ``cut_short()`` is true ends it."""
        end = time.monotonic() + seconds
        while (step := end - time.monotonic()) > 0:
            with contextlib.suppress(InterruptedError):
                if select.select([self._r], [], [], step)[0]:
                    self.disarm(True)  # consume the byte
            if cut_short():
                return

    def take_all(self) -> list[RunResult]:
        """Every result waiting; safe while other threads put and take."""
        out = []
        for items in (self._later, self._items):
            pop = items.popleft
            try:
                while True:
                    out.append(pop())
            except IndexError:
                pass
        return out

    def close(self) -> None:
        self._r.close()
        self._w.close()


def decide_all(
    results: list[RunResult], entries: list[Running | None], now: float, rng: random.Random
) -> list[tuple[RunResult, Outcome]]:
    """The outcome of each result (:func:`faena.core.outcomes.decide`), ``entries`` the
    ledger's entries of their jobs (None: let go meanwhile); a job whose lease ran out here
    has none: it is never reported."""
    if not results:
        return []
    decide = outcomes.decide
    return [
        (
            r,
            decide(
                r.job,
                result_json=r.result_json,
                error=r.error,
                retryable=r.retryable,
                cancelled=r.cancelled,
                policy=e.task.options.retry if e is not None and e.task is not None else None,
                now=now,
                rng=rng,
            ),
        )
        for r, e in zip(results, entries, strict=True)
        if e is None or not e.expired
    ]
