"""What a program gets when it wires nothing itself: the defaults of the objects built in
code (``faena.App``, ``faena.camunda.ExternalTaskClient``). The runtime modules (the worker,
the Camunda client) only know the :class:`~faena.core.logsink.LogSink` protocol; the CLI and
tests pass their own sink, and this module is the one place that picks the default.
"""

from __future__ import annotations

from faena.core.logsink import LogSink


def default_log_sink() -> LogSink:
    """Every event a structured line through ``faena.jobs`` (see
    :mod:`faena.observability.logs`): what faena's workers have always written."""
    from faena.observability.logs import EVENT_LINES

    return EVENT_LINES
