"""Log lines: faena's JSON and console line for a record, and the handler that writes them.

The JSON line of an ordinary record comes from python-json-logger (the record's ``extra``
fields, the traceback), with faena's keys first: ``timestamp``, ``level``, ``logger``, ``event``,
``message``. A worker's event lines skip ``LogRecord`` altogether: :func:`json_line` renders
the same line from the event's time and fields, which costs a fraction of building and
formatting a record per job (the hot path, see :class:`LineHandler`).
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any, TextIO

from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.json import JsonFormatter as LibraryJsonFormatter

_STANDARD = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}

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


#: the JSON text of a line's header after its timestamp, by (level, logger, event, message):
#: a worker's lines have few of them, each encoded once
_HEADS: dict[tuple[str, str, str, str], str] = {}
_HEADS_KEPT = 1024


def json_line(
    created: float, level: str, logger: str, event: str, message: str, fields: dict[str, Any]
) -> str:
    if _HEADER_KEYS.isdisjoint(fields):  # the usual case: the header's text is known
        known = (level, logger, event, message)
        head = _HEADS.get(known)
        if head is None:
            if len(_HEADS) >= _HEADS_KEPT:
                _HEADS.clear()
            names = ("level", "logger", "event", "message")
            head = _encode(dict(zip(names, (level.lower(), logger, event, message), strict=True)))
            head = _HEADS[known] = head[1:-1]
        # the timestamp's text needs no escaping; the fields are the line's rest, in order
        start = f'{{"timestamp": "{_timestamp(created)}", {head}'
        rest = _encode_line(fields)
        return start + "}" if rest == "{}" else f"{start}, {rest[1:]}"
    line: dict[str, Any] = {
        "timestamp": _timestamp(created),
        "level": level.lower(),
        "logger": logger,
        "event": event,
        "message": message,
    }
    for key, value in fields.items():  # a field named as a header key is left out
        line.setdefault(key, value)
    return _encode_line(line)


# one encoder for every line (json.dumps with options would build a new one each time)
_json_encode = json.JSONEncoder(default=str, ensure_ascii=False, allow_nan=False).encode


def _c_encoder() -> Callable[[Any], str] | None:
    """The C encoder behind ``_json_encode``, built once: ``JSONEncoder.encode`` builds it again
    for every call (half the cost of a job's line). The same output; no check for circular
    containers (a line's fields are flat; a circular one fails with RecursionError, as it
    did through ``_finite``). None where the C accelerator is missing."""
    make = getattr(json.encoder, "c_make_encoder", None)
    text = getattr(json.encoder, "c_encode_basestring", None)
    if make is None or text is None:
        return None
    # markers, default, encode str, indent, key sep, item sep, sort_keys, skipkeys, allow_nan
    chunks = make(None, str, text, None, ": ", ", ", False, False, False)
    return lambda line: "".join(chunks(line, 0))


_encode: Callable[[Any], str] = _c_encoder() or _json_encode


#: the keys every line starts with, in this order; a field of the same name never replaces one
HEADER = ("timestamp", "level", "logger", "event", "message")
_HEADER_KEYS = frozenset(HEADER)


class JsonFormatter(LibraryJsonFormatter):
    """faena's JSON line for an ordinary record, through python-json-logger.

    The library collects the record's ``extra`` fields and its traceback (as ``traceback``);
    faena puts its header first, leaves out fields that are None, takes an event's fields from
    the record as :func:`log_event <faena.observability.logs.log_event>` attached them, and
    encodes with :func:`json_line`'s encoder, so both paths write the same line.
    """

    def __init__(self) -> None:
        super().__init__(
            rename_fields={"exc_info": "traceback"},
            reserved_attrs=[*RESERVED_ATTRS, "event", FIELDS_ATTR, "message", "asctime"],
        )

    def add_fields(
        self, log_data: dict[str, Any], record: logging.LogRecord, message_dict: dict[str, Any]
    ) -> None:
        log_data.update(
            timestamp=_timestamp(record.created),
            level=record.levelname.lower(),
            logger=record.name,
            event=getattr(record, "event", None) or "log",
            message=record.message,
        )
        fields: dict[str, Any] = {}
        event_fields: dict[str, Any] | None = getattr(record, FIELDS_ATTR, None)
        if event_fields is None:
            super().add_fields(fields, record, message_dict)
        else:  # an event line: its fields as the event had them, and a traceback if any
            fields.update(event_fields)
            if "exc_info" in message_dict:
                fields["traceback"] = message_dict["exc_info"]
        for key, value in fields.items():
            if value is not None:
                log_data.setdefault(key, value)

    def jsonify_log_record(self, log_data: dict[str, Any]) -> str:
        return _encode_line(log_data)


def _encode_line(line: dict[str, Any]) -> str:
    try:
        return _encode(line)
    except ValueError:  # NaN/Infinity are not JSON: Loki's json stage would reject the line
        return _encode(_finite(line))


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
