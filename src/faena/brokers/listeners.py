"""Who hears of a broker client's own retries (see ``protocol.RetryReporting``)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable

Listener = Callable[[BaseException], None]


class RetryListeners:
    """Called with the error at each retry of a failed call; a failing listener is ignored
    (it must never break the call it hears of). Adding and removing are rare; calling is
    lock-free (the tuple is swapped whole)."""

    def __init__(self) -> None:
        self._listeners: tuple[Listener, ...] = ()

    def add(self, listener: Listener) -> None:
        self._listeners = (*self._listeners, listener)

    def remove(self, listener: Listener) -> None:
        self._listeners = tuple(x for x in self._listeners if x != listener)

    def __bool__(self) -> bool:
        """Whether anyone listens."""
        return bool(self._listeners)

    def __call__(self, error: BaseException) -> None:
        for listener in self._listeners:
            with contextlib.suppress(Exception):
                listener(error)
