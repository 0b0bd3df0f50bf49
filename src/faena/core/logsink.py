"""Where the events' log lines go, as the worker and the Camunda client see it.

The runtime only asks for what it needs (log every event of a bus, hold lines back while it
is busy, write them out before it sleeps); the composition (``App``, the CLI) decides what
does it: :class:`faena.observability.logs.EventLines` by default, :data:`NO_LOGS` for none.
"""

from __future__ import annotations

from typing import Protocol

from faena.core.events import EventBus


class LogSink(Protocol):
    def attach(self, bus: EventBus) -> None:
        """Log every event of ``bus`` (once, however often it is called)."""

    def batch(self) -> None:
        """Let lines collect until :meth:`flush` (the caller flushes often, and before it
        sleeps)."""

    def flush(self) -> None:
        """Write out the lines held back."""

    def needs(self, bus: EventBus, name: str) -> bool:
        """Whether an event called ``name`` on ``bus`` reaches anyone now: a line this sink
        writes, or another handler (else the caller may skip building it)."""

    def configure_default(self) -> None:
        """Give the lines somewhere to go when the program set up no logging itself."""


class NoLogs:
    """Writes nothing; events still reach the bus's other handlers."""

    def attach(self, bus: EventBus) -> None:
        pass

    def batch(self) -> None:
        pass

    def flush(self) -> None:
        pass

    def needs(self, bus: EventBus, name: str) -> bool:
        return bus.wants(name)

    def configure_default(self) -> None:
        pass


NO_LOGS = NoLogs()
