"""JSON log lines: valid for Loki's json stage in every case, and the emulator itself."""

from __future__ import annotations

import io
import json
import logging
import sys
import threading
from typing import Any

import pytest
from tests.loki_json import JSON_ERROR, LogQLError, json_labels, run

from faena.core import events as ev
from faena.observability import log_lines, logs

STREAM = {"namespace": "data", "pod": "worker-abc", "container": "worker"}


@pytest.fixture
def out() -> io.StringIO:
    buf = io.StringIO()
    logs.configure("json", "DEBUG", stream=buf)
    return buf


def lines(buf: io.StringIO) -> list[str]:
    return buf.getvalue().splitlines()


def test_event_lines_carry_the_design_fields(out: io.StringIO) -> None:
    logs.log_event(
        ev.Event(ev.JOB_FAILED, 0.0, {"job_id": "j1", "task": "etl.load", "queue": "etl_pool",
                                      "status": "failed", "attempt": 2, "will_retry": True,
                                      "error_type": "ValueError", "error_message": "bad row",
                                      "duration_ms": 12.5, "traceback": "Traceback..."})
    )  # fmt: skip
    [line] = lines(out)
    obj = json.loads(line)
    for key in ("timestamp", "level", "logger", "event", "message", "job_id", "task", "queue",
                "status", "attempt", "error_type", "error_message", "duration_ms"):  # fmt: skip
        assert key in obj, key
    labels = json_labels(line, STREAM)
    assert labels["status"] == "failed"
    assert labels["attempt"] == "2"
    assert labels["will_retry"] == "true"
    assert labels["duration_ms"] == "12.5"
    assert "traceback" not in obj  # a retried failure is a warning: no traceback noise


class _Writes(io.StringIO):
    """An unbuffered stream (as stdout under PYTHONUNBUFFERED=1): counts its writes."""

    def __init__(self) -> None:
        super().__init__()
        self.writes = 0

    def write(self, text: str) -> int:
        self.writes += 1
        return super().write(text)


def _succeeded(i: int) -> ev.Event:
    return ev.Event(ev.JOB_SUCCEEDED, 0.0, {"job_id": f"j{i}", "status": "succeeded"})


def test_a_busy_workers_lines_are_written_together_and_in_order() -> None:
    stream = _Writes()
    logs.configure("json", "INFO", stream=stream)
    logs.batch_event_lines()
    for i in range(100):
        logs.log_event(_succeeded(i))
    assert stream.writes == 0  # deferred: rendered and written by whoever flushes
    logging.getLogger("faena.test").warning("plain", extra={"event": "test.plain"})
    assert 1 < stream.writes < 10  # every HOLD_BYTES of lines, not one write per line
    logs.log_event(_succeeded(100))
    assert json.loads(lines(stream)[-1])["event"] == "test.plain"  # held lines came first
    logs.flush_events()
    got = [json.loads(line) for line in lines(stream)]
    assert [g["job_id"] for g in got if "job_id" in g] == [f"j{i}" for i in range(101)]
    assert [g["event"] for g in got].index("test.plain") == 100
    held = _Writes()
    logs.configure("json", "INFO", stream=held)  # a new handler: the old one's lines come out
    assert json.loads(lines(stream)[-1])["job_id"] == "j100"


class _Chunks(io.StringIO):
    """Keeps every write, to check what one write carries."""

    def __init__(self) -> None:
        super().__init__()
        self.chunks: list[str] = []

    def write(self, text: str) -> int:
        self.chunks.append(text)
        return super().write(text)


def test_each_write_is_whole_lines_within_a_pipes_atomic_write() -> None:
    stream = _Chunks()
    logs.configure("json", "INFO", stream=stream)
    logs.batch_event_lines()
    for i in range(200):  # non-ASCII too: the bound is in bytes, not characters
        logs.log_event(ev.Event(ev.JOB_SUCCEEDED, 0.0, {"job_id": f"j{i}", "task": "año·ü" * i}))
    logs.log_event(ev.Event(ev.JOB_SUCCEEDED, 0.0, {"job_id": "big", "task": "x" * 9000}))
    logs.flush_events()
    big = [c for c in stream.chunks if '"big"' in c]
    assert len(big) == 1 and big[0].count("\n") == 1, "a line past the bound goes alone"
    for chunk in stream.chunks:
        assert chunk.endswith("\n"), "whole lines only"
        if chunk is not big[0]:
            assert len(chunk.encode()) <= log_lines.HOLD_BYTES
    got = [json.loads(line)["job_id"] for line in lines(stream)]
    assert got == [f"j{i}" for i in range(200)] + ["big"]


class _Broken(io.StringIO):
    def write(self, text: str) -> int:
        raise BrokenPipeError("the reader went away (test)")


def test_a_failed_write_is_reported_on_stderr_and_never_raised(
    capsys: pytest.CaptureFixture[str],
) -> None:
    logs.configure("json", "INFO", stream=_Broken())
    logs.batch_event_lines()
    for i in range(log_lines.DEFER_LINES):  # a write is tried in the job's own path
        logs.log_event(_succeeded(i))
    err = capsys.readouterr().err
    assert "--- Logging error ---" in err and "BrokenPipeError" in err
    logs.configure("json", "INFO", stream=io.StringIO())


def test_deferred_lines_are_rendered_by_the_flush_with_the_time_they_were_logged(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    stream = _Writes()
    logs.configure("json", "INFO", stream=stream)
    logs.batch_event_lines()
    with monkeypatch.context() as m:
        m.setattr(logs.time, "time", lambda: 1_000_000_000.25)
        logs.log_event(_succeeded(1))
    rendered: list[str] = []
    real = logs.json_line
    monkeypatch.setattr(
        logs, "json_line", lambda *a: rendered.append(threading.current_thread().name) or real(*a)
    )
    flusher = threading.Thread(target=logs.flush_events, name="flusher")
    flusher.start()
    flusher.join()
    assert rendered == ["flusher"]  # not on the thread that logged
    [line] = [json.loads(text) for text in lines(stream)]
    assert line["job_id"] == "j1" and line["timestamp"] == "2001-09-09T01:46:40.250Z"


def test_the_logging_thread_writes_deferred_lines_once_too_many_wait() -> None:
    stream = _Writes()
    logs.configure("json", "INFO", stream=stream)
    logs.batch_event_lines()
    for i in range(log_lines.DEFER_LINES - 1):
        logs.log_event(_succeeded(i))
    assert stream.writes == 0
    logs.log_event(_succeeded(log_lines.DEFER_LINES - 1))  # no flush comes: memory stays bounded
    got = [json.loads(text)["job_id"] for text in lines(stream)]
    assert got == [f"j{i}" for i in range(log_lines.DEFER_LINES)]


class _Unprintable:
    def __str__(self) -> str:
        raise RuntimeError("no text for this value (test)")


def test_a_line_that_cannot_be_rendered_is_reported_and_the_others_still_come_out(
    capsys: pytest.CaptureFixture[str],
) -> None:
    stream = io.StringIO()
    logs.configure("json", "INFO", stream=stream)
    logs.batch_event_lines()
    logs.log_event(_succeeded(1))
    logs.log_event(ev.Event(ev.JOB_SUCCEEDED, 0.0, {"job_id": "bad", "x": _Unprintable()}))
    logs.log_event(_succeeded(2))
    logs.flush_events()  # never raises into the worker's main thread
    assert [json.loads(text)["job_id"] for text in lines(stream)] == ["j1", "j2"]
    err = capsys.readouterr().err
    assert "--- Logging error ---" in err and "no text for this value" in err
    logs.configure("json", "INFO", stream=io.StringIO())


def test_unbatched_a_line_that_cannot_be_rendered_is_reported_not_raised(
    capsys: pytest.CaptureFixture[str],
) -> None:
    stream = io.StringIO()
    logs.configure("json", "INFO", stream=stream)  # no batching: each line written at once
    logs.log_event(ev.Event(ev.JOB_SUCCEEDED, 0.0, {"job_id": "bad", "x": _Unprintable()}))
    logs.log_event(_succeeded(1))
    assert [json.loads(text)["job_id"] for text in lines(stream)] == ["j1"]
    assert "no text for this value" in capsys.readouterr().err
    logs.configure("json", "INFO", stream=io.StringIO())


def test_event_lines_are_written_at_once_unless_batching() -> None:
    stream = _Writes()
    logs.configure("json", "INFO", stream=stream)
    logs.log_event(_succeeded(1))
    assert [json.loads(line)["job_id"] for line in lines(stream)] == ["j1"]


def test_non_finite_numbers_keep_the_line_valid_json(out: io.StringIO) -> None:
    log = logging.getLogger("faena.test")
    log.info("odd", extra={"event": "test.odd", "ratio": float("nan"), "big": [float("inf")]})
    [line] = lines(out)
    assert "__error__" not in json_labels(line, STREAM)
    assert json.loads(line)["ratio"] == "nan"


def test_uncaught_errors_become_one_json_line(out: io.StringIO) -> None:
    before = sys.excepthook, threading.excepthook
    try:
        logs.capture_uncaught()

        def boom() -> None:
            raise RuntimeError("broker vanished")

        t = threading.Thread(target=boom, name="faena-heartbeat")
        t.start()
        t.join()
        try:
            raise KeyError("x")
        except KeyError:
            sys.excepthook(*sys.exc_info())  # type: ignore[arg-type]
    finally:
        sys.excepthook, threading.excepthook = before
    got = [json.loads(line) for line in lines(out)]
    assert [g["event"] for g in got] == ["worker.error", "worker.error"]
    assert got[0]["error_type"] == "RuntimeError"
    assert got[0]["thread_name"] == "faena-heartbeat"
    assert "Traceback" in got[0]["traceback"]
    assert got[1]["level"] == "error"


def test_emulator_semantics() -> None:
    line = json.dumps({"status": "failed", "namespace": "x", "a": {"b-c": 1}, "n": None,
                       "l": [1], "ok": False, "1st": "y"})  # fmt: skip
    labels = json_labels(line, STREAM)
    assert labels["namespace"] == "data"
    assert labels["namespace_extracted"] == "x"
    assert labels["a_b_c"] == "1"
    assert labels["ok"] == "false"
    assert labels["_1st"] == "y"
    assert "n" not in labels and "l" not in labels
    assert json_labels("Traceback (most recent call last):", STREAM)["__error__"] == JSON_ERROR
    assert json_labels('{"x": NaN}', STREAM)["__error__"] == JSON_ERROR
    assert json_labels("[1, 2]", STREAM)["__error__"] == JSON_ERROR


def test_emulator_queries() -> None:
    a = json.dumps({"status": "failed", "queue": "etl_pool", "message": "job failed"})
    b = json.dumps({"status": "succeeded", "queue": "etl_pool", "message": "ok"})
    c = "plain text status=failed"
    got = run([a, b, c], STREAM, '{namespace="data"} | json | status="failed"')
    assert got == [a]
    assert run([a, b, c], STREAM, '{namespace="other"} | json | status="failed"') == []
    assert run([a, b, c], STREAM, '{namespace="data"} |= "failed"') == [a, c]
    assert run([a, b], STREAM, '{namespace=~"d.*"} | json | status!="failed"') == [b]
    q = 'count_over_time({namespace="data"} | json | queue="etl_pool" [1m])'
    assert run([a, b, c], STREAM, q) == 2
    with pytest.raises(LogQLError, match="count_over_time wraps"):
        run([a], STREAM, '{namespace="data"} | json | queue="etl_pool" | count_over_time(1m)')


def _record(msg: str, **extra: object) -> logging.LogRecord:
    record = logging.makeLogRecord({"name": "faena.jobs", "levelname": "INFO", "msg": msg})
    record.__dict__.update(extra)
    record.created = 1_000_000_000.25
    return record


def test_a_record_and_an_event_entry_render_the_same_line() -> None:
    fields = {"job_id": "j1", "task": "etl.load", "attempt": 2, "duration_ms": 1.5}
    record = _record("job succeeded", event=ev.JOB_SUCCEEDED, **{log_lines.FIELDS_ATTR: fields})
    through_library = log_lines.JsonFormatter().format(record)
    direct = log_lines.json_line(
        1_000_000_000.25, "INFO", "faena.jobs", ev.JOB_SUCCEEDED, "job succeeded", fields
    )
    assert through_library == direct
    assert list(json.loads(direct))[:5] == list(log_lines.HEADER)


def test_an_ordinary_record_keeps_its_extra_fields_drops_nones_and_names_the_traceback() -> None:
    try:
        raise ValueError("bad row")
    except ValueError:
        exc_info = sys.exc_info()
    record = _record("loading %s", table="users", skipped=None, level="mine", exc_info=exc_info)
    record.args = ("users",)
    line = json.loads(log_lines.JsonFormatter().format(record))
    assert line["message"] == "loading users" and line["event"] == "log"
    assert line["table"] == "users" and "skipped" not in line
    assert line["level"] == "info"  # a field never replaces the header's
    assert "ValueError: bad row" in line["traceback"] and "exc_info" not in line


def test_the_prebuilt_encoder_writes_what_json_does() -> None:
    values: list[dict[str, Any]] = [
        {"a": 1, "b": 'é\n"\\', "c": 1.5, "d": None, "e": True, "f": [1, (2, 3), {"x": {}}]},
        {"when": object(), "big": 10**30, "neg": -0.0, "tiny": 1e-300, "nested": {"k": [None]}},
        {1: "int key", "": "", "u": "\u2028\U0001f600"},
    ]
    for value in values:
        assert log_lines._encode(value) == log_lines._json_encode(value)
    with pytest.raises(ValueError):  # NaN is not JSON: the line falls back to _finite
        log_lines._encode({"x": float("nan")})
    assert log_lines._encode_line({"x": float("nan")}) == '{"x": "nan"}'


def test_a_json_line_is_its_header_then_its_fields_encoded_as_one_object() -> None:
    def reference(created: float, level: str, event: str, message: str, fields: Any) -> str:
        line = {
            "timestamp": log_lines._timestamp(created),
            "level": level.lower(),
            "logger": "faena.jobs",
            "event": event,
            "message": message,
        }
        for key, value in fields.items():
            line.setdefault(key, value)
        return log_lines._encode_line(line)

    cases: list[tuple[str, str, dict[str, Any]]] = [
        ("job.succeeded", "job succeeded", {"job_id": "j", "attempt": 1, "duration_ms": 0.5}),
        ("x", 'quote " and é\n', {}),
        ("x", "nan", {"a": float("nan"), "b": [1, {"c": None}]}),
        ("x", "a field named as the header", {"message": "no", "level": "no", "z": 1}),
    ]
    for event, message, fields in cases * 2:  # the second time, the header is cached
        for level in ("INFO", "WARNING"):
            got = log_lines.json_line(1765000000.25, level, "faena.jobs", event, message, fields)
            assert got == reference(1765000000.25, level, event, message, fields)
            assert json.loads(got)["message"] == message
