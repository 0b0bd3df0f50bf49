"""What an executor reports when a job's attempt ends, and the channel it reports on."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections import deque
from dataclasses import dataclass

from faena.core.job import ErrorInfo, Job


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
    """A thread-safe inbox with a descriptor that turns readable when results arrive."""

    def __init__(self) -> None:
        self._items: deque[RunResult] = deque()
        self._r, self._w = socket.socketpair()
        self._r.setblocking(False)
        self._w.setblocking(False)
        self._lock = threading.Lock()

    def fileno(self) -> int:
        return self._r.fileno()

    def put(self, item: RunResult) -> None:
        self._items.append(item)
        self.poke()

    def poke(self) -> None:
        with contextlib.suppress(OSError):
            self._w.send(b"\x01")

    def take_all(self) -> list[RunResult]:
        with contextlib.suppress(OSError):
            while self._r.recv(4096):
                pass
        out = []
        while self._items:
            out.append(self._items.popleft())
        return out

    def close(self) -> None:
        self._r.close()
        self._w.close()
