"""Structured logs: one JSON object per line (or a console line on a terminal).

Every line has ``timestamp``, ``level``, ``logger``, ``event`` (a stable name) and ``message``,
plus the job's fields where known (``job_id``, ``task``, ``queue``, ``pool``, ``attempt``,
``status``, ``duration_ms``, ``worker``, ``error_type``, ``error_message``...), so LogQL such as
``| json | status="failed"`` or ``| json | queue="etl_pool"`` selects the right lines.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from types import TracebackType
from typing import Any, TextIO

from faena.core import events as ev
from faena.errors import ConfigError
from faena.observability.log_lines import (
    FIELDS_ATTR,
    ConsoleFormatter,
    Entry,
    JsonFormatter,
    LineHandler,
    console_line,
    json_line,
)

_LEVELS = {
    ev.JOB_FAILED: logging.WARNING,
    ev.JOB_TIMEOUT: logging.WARNING,
    ev.JOB_LEASE_LOST: logging.WARNING,
    ev.LEASE_EXPIRED: logging.WARNING,
    ev.JOB_DEAD: logging.ERROR,
    ev.WORKER_ERROR: logging.ERROR,
    ev.WORKER_MIDDLEWARE_ERROR: logging.ERROR,
    ev.WORKER_BROKER_UNAVAILABLE: logging.ERROR,
    ev.JOB_CLAIMED: logging.DEBUG,
    ev.JOB_ENQUEUED: logging.DEBUG,
}
_MESSAGES = {
    ev.JOB_ENQUEUED: "job enqueued",
    ev.JOB_CLAIMED: "job started",
    ev.JOB_SUCCEEDED: "job succeeded",
    ev.JOB_FAILED: "job failed",
    ev.JOB_TIMEOUT: "job timed out",
    ev.JOB_DEAD: "job is dead: no attempts left",
    ev.JOB_RELEASED: "job released at shutdown; it runs again elsewhere",
    ev.JOB_CANCELLED: "job cancelled",
    ev.JOB_LEASE_LOST: "job's lease was lost; its result was not recorded",
    ev.LEASE_EXPIRED: "lease expired: the job's worker is presumed dead",
    ev.WORKER_STARTED: "worker started",
    ev.WORKER_STOPPING: "worker stopping: no new jobs, draining",
    ev.WORKER_STOPPED: "worker stopped",
    ev.WORKER_ERROR: "worker error",
    ev.WORKER_MIDDLEWARE_ERROR: "a middleware hook raised; the job goes on (see hook)",
    ev.WORKER_BROKER_UNAVAILABLE: "broker unavailable: jobs go on, calls retried with backoff",
    ev.WORKER_BROKER_RECOVERED: "broker answers again",
}
#: a dead job whose error is never retried (``reason`` ``not_retryable``) had attempts left
_NOT_RETRYABLE = "job is dead: its error is not retried (unknown task, or not in retry_on)"
_event_log = logging.getLogger("faena.jobs")


class _EventWriter:
    """Writes event lines straight to the handler that :func:`configure` installed, skipping
    ``LogRecord`` and caller lookup (the worker's hot path); the line is the same."""

    def __init__(self, handler: LineHandler, fmt: str) -> None:
        self.handler = handler
        self.json = fmt == "json"
        handler.render = self._render
        self._faena = logging.getLogger("faena")
        #: a worker that calls :func:`flush_events` often (and before it sleeps) lets the
        #: handler hold lines back
        self.batching = False

    def active(self) -> bool:
        """Only while faena's loggers still route to our handler alone."""
        return (
            self._faena.handlers == [self.handler]
            and not _event_log.handlers
            and _event_log.propagate
        )

    def write(self, level: int, event: str, message: str, fields: dict[str, Any]) -> None:
        entry = (time.time(), logging.getLevelName(level), event, message, fields)
        self.handler.defer(entry)  # rendered by whoever flushes (the worker's main thread)
        if not self.batching:
            self.handler.flush()

    def _render(self, entry: Entry) -> str:
        created, level, event, message, fields = entry
        if self.json:
            return json_line(created, level, _event_log.name, event, message, fields)
        return console_line(created, level, event, message, fields)

    def flush(self) -> None:
        self.handler.flush()


_writer: _EventWriter | None = None
_root_handler: logging.Handler | None = None


def batch_event_lines() -> None:
    """Let event lines collect until :func:`flush_events` or until they would pass ``HOLD_BYTES``
    (the worker flushes before every wait and every ``LOG_FLUSH_SECONDS`` while jobs
    run, so a line is never held while the worker idles)."""
    if _writer is not None:
        _writer.batching = True


def flush_events() -> None:
    if _writer is not None:
        _writer.flush()


def configure(fmt: str = "auto", level: str = "INFO", stream: TextIO | None = None) -> None:
    """Send faena's logs to ``stream`` (stdout) as JSON lines or console lines."""
    stream = stream or sys.stdout
    if fmt == "auto":
        fmt = "console" if stream.isatty() else "json"
    if fmt not in ("json", "console"):
        raise ConfigError(f"log format must be auto, json or console, got {fmt!r}")
    handler = LineHandler(stream)
    handler.setFormatter(JsonFormatter() if fmt == "json" else ConsoleFormatter())
    root = logging.getLogger("faena")
    for old in list(root.handlers):
        old.flush()  # lines it still holds come out before the new handler's
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    root.propagate = False
    # other libraries' records (psycopg's pool, the task's own logging) become the same lines,
    # unless the program configured logging itself
    global _root_handler
    top = logging.getLogger()
    if _root_handler is not None and _root_handler in top.handlers:
        top.removeHandler(_root_handler)
    if not top.handlers:
        top.addHandler(handler)  # at the root's own level (WARNING unless set)
        _root_handler = handler
    global _writer
    _writer = _EventWriter(handler, fmt)


def log_event(event: ev.Event) -> None:
    if event.name in ev.SCHEDULE_EVENTS:  # the scheduler writes their lines itself
        return
    level = _LEVELS.get(event.name, logging.INFO)
    if not _event_log.isEnabledFor(level):
        return
    fields = {k: v for k, v in event.fields.items() if v is not None}
    if level < logging.ERROR:
        fields.pop("traceback", None)
    if "job_id" in fields:
        fields.setdefault("task_id", fields["job_id"])  # the seed's name for the same id
    message = _MESSAGES.get(event.name, event.name)
    if fields.get("reason") == "not_retryable":
        message = _NOT_RETRYABLE
    writer = _writer
    if writer is not None and writer.active():
        writer.write(level, event.name, message, fields)
        return
    _event_log.log(level, message, extra={"event": event.name, FIELDS_ATTR: fields})


def capture_uncaught() -> None:
    """Log exceptions that escape the main thread or any thread as one JSON line each
    (``event`` ``worker.error``, with ``error_type``, ``error_message`` and ``traceback``)
    instead of a raw traceback spread over many lines. Call after :func:`configure`."""
    log = logging.getLogger("faena.errors")

    def report(
        kind: type[BaseException],
        exc: BaseException,
        tb: TracebackType | None,
        thread: str | None = None,
    ) -> None:
        if issubclass(kind, KeyboardInterrupt):
            sys.__excepthook__(kind, exc, tb)
            return
        log.error(
            f"uncaught {kind.__name__} in faena" + (f" thread {thread}" if thread else ""),
            exc_info=(kind, exc, tb),
            extra={
                "event": ev.WORKER_ERROR,
                "error_type": kind.__name__,
                "error_message": str(exc),
                "thread_name": thread,
            },
        )

    def thread_hook(args: threading.ExceptHookArgs) -> None:
        if args.exc_value is None:
            return
        name = args.thread.name if args.thread is not None else None
        report(args.exc_type, args.exc_value, args.exc_traceback, name)

    sys.excepthook = report
    threading.excepthook = thread_hook


def logs_event(name: str) -> bool:
    """Whether :func:`log_event` would write a line for events called ``name`` now."""
    return _event_log.isEnabledFor(_LEVELS.get(name, logging.INFO))


def attach_event_logging(bus: ev.EventBus) -> None:
    """Log every event of ``bus`` once (idempotent)."""
    if getattr(bus, "_faena_logging", False):
        return
    bus.subscribe(None, log_event)
    bus._faena_logging = True  # type: ignore[attr-defined]


class EventLines:
    """The default :class:`~faena.core.logsink.LogSink`: every event a line of
    :func:`log_event` (``faena.jobs``), written through what :func:`configure` installed."""

    def attach(self, bus: ev.EventBus) -> None:
        attach_event_logging(bus)

    def batch(self) -> None:
        batch_event_lines()

    def flush(self) -> None:
        flush_events()

    def needs(self, bus: ev.EventBus, name: str) -> bool:
        # a claim is an event per job: skip building it when only a silent logger would get it
        return logs_event(name) or any(h is not log_event for h in bus.handlers(name))

    def configure_default(self) -> None:
        if not logging.getLogger("faena").handlers:
            configure()


EVENT_LINES = EventLines()
