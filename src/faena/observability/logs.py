"""Structured logs: one JSON object per line (or a console line on a terminal).

Every line has ``timestamp``, ``level``, ``logger``, ``event`` (a stable name) and ``message``,
plus the job's fields where known (``job_id``, ``task``, ``queue``, ``pool``, ``attempt``,
``status``, ``duration_ms``, ``worker``, ``error_type``, ``error_message``...), so LogQL such as
``| json | status="failed"`` or ``| json | queue="etl_pool"`` selects the right lines.
"""

from __future__ import annotations

import json
import logging
import math
import sys
import threading
import time
from collections.abc import Callable
from datetime import datetime
from types import TracebackType
from typing import Any, TextIO

from faena.core import events as ev

_STANDARD = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}
_LEVELS = {
    ev.JOB_FAILED: logging.WARNING,
    ev.JOB_TIMEOUT: logging.WARNING,
    ev.JOB_LEASE_LOST: logging.WARNING,
    ev.LEASE_EXPIRED: logging.WARNING,
    ev.JOB_DEAD: logging.ERROR,
    ev.WORKER_ERROR: logging.ERROR,
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
    ev.WORKER_BROKER_UNAVAILABLE: "broker unavailable: jobs go on, calls retried with backoff",
    ev.WORKER_BROKER_RECOVERED: "broker answers again",
}
_event_log = logging.getLogger("faena.jobs")


#: attribute of a LogRecord that carries an event's fields (set by :func:`log_event`)
FIELDS_ATTR = "faena_fields"


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    fields: dict[str, Any] | None = getattr(record, FIELDS_ATTR, None)
    if fields is not None:  # an event line: no need to scan the record
        return fields
    return {k: v for k, v in record.__dict__.items() if k not in _STANDARD and v is not None}


_second: tuple[int, str] = (-1, "")  # the last whole second seen, formatted (swapped whole)


def _timestamp(created: float) -> str:
    global _second
    whole, prefix = _second
    if whole != int(created):  # a new second: format it once (lines come many per second)
        whole = int(created)
        prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole))
        _second = (whole, prefix)
    millis = int(created * 1000) % 1000
    return f"{prefix}.{millis:03d}Z"


def json_line(
    created: float, level: str, logger: str, event: str, message: str, fields: dict[str, Any]
) -> str:
    line: dict[str, Any] = {
        "timestamp": _timestamp(created),
        "level": level.lower(),
        "logger": logger,
        "event": event,
        "message": message,
    }
    if line.keys().isdisjoint(fields):  # the usual case: one C call, not one per field
        line.update(fields)
    else:
        for key, value in fields.items():
            line.setdefault(key, value)
    try:
        return _encode(line)
    except ValueError:  # NaN/Infinity are not JSON: Loki's json stage would reject the line
        return _encode(_finite(line))


# one encoder for every line (json.dumps with options would build a new one each time)
_encode = json.JSONEncoder(default=str, ensure_ascii=False, allow_nan=False).encode


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        fields = dict(_fields(record))
        if record.exc_info:
            fields["traceback"] = self.formatException(record.exc_info)
        return json_line(
            record.created,
            record.levelname,
            record.name,
            getattr(record, "event", None) or "log",
            record.getMessage(),
            fields,
        )


def _finite(value: Any) -> Any:
    """``value`` with every non-finite float replaced by its name (``"NaN"``, ``"inf"``)."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_finite(v) for v in value]
    return value


class ConsoleFormatter(logging.Formatter):
    _KEYS = (
        "task",
        "job_id",
        "queue",
        "status",
        "attempt",
        "duration_ms",
        "error_type",
        "error_message",
    )

    def format(self, record: logging.LogRecord) -> str:
        return console_line(
            record.created,
            record.levelname,
            getattr(record, "event", ""),
            record.getMessage(),
            _fields(record),
        )


def console_line(
    created: float, level: str, event: str, message: str, fields: dict[str, Any]
) -> str:
    when = datetime.fromtimestamp(created).strftime("%H:%M:%S.%f")[:-3]
    extra = " ".join(f"{k}={fields[k]}" for k in ConsoleFormatter._KEYS if k in fields)
    return f"{when} {level:<7} {event:<16} {message}  {extra}".rstrip()


#: held event lines are written out before they would pass this many bytes: a pipe's atomic
#: write (PIPE_BUF on Linux), so worker processes that share a pipe (``--processes``) never
#: split each other's lines
HOLD_BYTES = 4096
#: deferred event lines are rendered by the thread that logs once this many are waiting (the
#: worker's main thread renders them first, every ``LOG_FLUSH_SECONDS`` at most)
DEFER_LINES = 1024

#: an event line not yet rendered: (time, level name, event, message, fields)
Entry = tuple[float, str, str, str, dict[str, Any]]


class LineHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """A stream handler that can hold event lines and write them out together.

    A busy worker writes a line per job; one ``write`` each would be a system call per job,
    and under ``PYTHONUNBUFFERED=1`` (usual in container images) the stream does not batch
    them. Held lines are written before they would pass ``HOLD_BYTES``, at :meth:`flush`, and
    before any record logged the ordinary way, so the output keeps its order. A single line
    longer than ``HOLD_BYTES`` is written alone.

    Event lines come in deferred (:meth:`defer`): the logging thread only keeps the line's
    time and fields, and whoever flushes renders them (at once, unless the worker batches).
    A worker's job slots log a line per job while the main thread mostly sleeps; rendering
    there, many lines at a time, keeps the JSON encoding off the slots' path and costs less
    per line.
    """

    def __init__(self, stream: TextIO) -> None:
        super().__init__(stream)
        self._held: list[str] = []
        self._held_bytes = 0
        self._pending: list[Entry] = []  # appended without the lock (list.append is atomic)
        self.render: Callable[[Entry], str] | None = None

    def defer(self, entry: Entry) -> None:
        """Keep an event line to render (with :attr:`render`) when lines are written out."""
        self._pending.append(entry)
        if len(self._pending) >= DEFER_LINES:
            self.flush()

    def _add(self, text: str) -> None:  # the handler's lock is held
        size = len(text) if text.isascii() else len(text.encode("utf-8", "replace"))
        if self._held_bytes + size > HOLD_BYTES:
            self._write_out()
        self._held.append(text)
        self._held_bytes += size
        if self._held_bytes >= HOLD_BYTES:
            self._write_out()

    def _render_pending(self) -> None:  # the handler's lock is held
        if not self._pending or self.render is None:
            return
        # lines deferred while these render go to the new list, written by the next flush
        pending, self._pending = self._pending, []
        render = self.render
        for entry in pending:
            try:
                text = render(entry)
            except Exception:  # as logging does: report on stderr, never raise
                self.handleError(_HELD_RECORD)
                continue
            self._add(text + "\n")

    def _write_out(self) -> None:  # the handler's lock is held
        if self._held:
            text = "".join(self._held)
            self._held.clear()
            self._held_bytes = 0
            try:
                self.stream.write(text)
            except Exception:  # as logging does: report on stderr, never raise into the job
                self.handleError(_HELD_RECORD)

    def _write_held(self) -> None:  # the handler's lock is held
        self._render_pending()
        self._write_out()

    def emit(self, record: logging.LogRecord) -> None:
        self._write_held()  # handle() holds the lock (an RLock) around emit
        super().emit(record)

    def flush(self) -> None:
        self.acquire()
        try:
            self._write_held()
        finally:
            self.release()
        super().flush()


#: what a failed write of held lines is reported as (``Handler.handleError`` names a record)
_HELD_RECORD = logging.makeLogRecord({"name": "faena.jobs", "msg": "held event lines"})


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
        raise ValueError(f"log format must be auto, json or console, got {fmt!r}")
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
    level = _LEVELS.get(event.name, logging.INFO)
    if not _event_log.isEnabledFor(level):
        return
    fields = {k: v for k, v in event.fields.items() if v is not None}
    if level < logging.ERROR:
        fields.pop("traceback", None)
    if "job_id" in fields:
        fields.setdefault("task_id", fields["job_id"])  # the seed's name for the same id
    message = _MESSAGES.get(event.name, event.name)
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
