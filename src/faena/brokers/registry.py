"""The worker registry's records, checked and encoded alike by every backend.

A report is kept as one JSON text (SQLite, PostgreSQL, Redis) beside the time the store got
it: a worker sends its whole report at every heartbeat, so no store merges fields.
"""

from __future__ import annotations

import json
import math

from faena.brokers.protocol import WORKER_STATES, WorkerRecord, WorkerReport
from faena.core import checks
from faena.errors import InvalidValueError


def _refuse(field: str, value: object, why: str) -> InvalidValueError:
    return InvalidValueError(f"{field} {value!r} is not valid: {why}", field=field, value=value)


def _count(field: str, value: object, least: int) -> None:
    if type(value) is not int or value < least:
        raise _refuse(field, value, f"use an integer >= {least}")


def _time(field: str, value: object) -> None:
    ok = type(value) in (int, float) and math.isfinite(value)  # type: ignore[arg-type]
    if not ok:
        raise _refuse(field, value, "use a finite number of seconds")


def check_report(report: WorkerReport) -> None:
    """Every field of a worker's report, before anything is written."""
    checks.check_text("worker id", report.id)
    checks.check_text("worker host", report.host)
    checks.check_text("worker version", report.version)
    _count("worker pid", report.pid, 0)
    _count("worker concurrency", report.concurrency, 1)
    if not isinstance(report.queues, tuple):
        raise _refuse("worker queues", report.queues, "use a tuple of queue names")
    checks.check_queues(report.queues)
    _time("worker started_at", report.started_at)
    _time("worker lost_after", report.lost_after)
    if report.lost_after <= 0:
        raise _refuse("worker lost_after", report.lost_after, "use a number of seconds > 0")
    if report.state not in WORKER_STATES:
        raise _refuse("worker state", report.state, f"use one of {', '.join(WORKER_STATES)}")


def encode(report: WorkerReport) -> str:
    return json.dumps(
        {
            "id": report.id,
            "host": report.host,
            "pid": report.pid,
            "queues": list(report.queues),
            "concurrency": report.concurrency,
            "version": report.version,
            "started_at": report.started_at,
            "state": report.state,
            "lost_after": report.lost_after,
        },
        separators=(",", ":"),
    )


def decode(text: str, seen_at: float) -> WorkerRecord:
    d = json.loads(text)
    report = WorkerReport(
        id=str(d["id"]),
        host=str(d["host"]),
        pid=int(d["pid"]),
        queues=tuple(str(q) for q in d["queues"]),
        concurrency=int(d["concurrency"]),
        version=str(d["version"]),
        started_at=float(d["started_at"]),
        state=str(d["state"]),
        lost_after=float(d["lost_after"]),
    )
    return WorkerRecord(report, float(seen_at))
