"""The autoscalers' records, checked and encoded alike by every backend.

As a worker's report (:mod:`faena.brokers.registry`), an autoscaler's report is kept as one
JSON text beside the time the store got it: the autoscaler sends its whole state after each
sync, so no store merges fields.
"""

from __future__ import annotations

import json
import math
from typing import Any

from faena.brokers.protocol import AutoscalerMetric, AutoscalerRecord, AutoscalerReport
from faena.core import checks
from faena.errors import InvalidValueError

#: the most metrics one report carries (an HPA lists a few)
MAX_METRICS = 32
#: the longest free text kept (a reason, a metric's error)
MAX_TEXT = 1000


def _refuse(field: str, value: object, why: str) -> InvalidValueError:
    return InvalidValueError(f"{field} {value!r} is not valid: {why}", field=field, value=value)


def _count(field: str, value: object, least: int = 0) -> None:
    if type(value) is not int or value < least or value > checks.COUNT_MAX:
        raise _refuse(field, value, f"use an integer from {least} to {checks.COUNT_MAX}")


def _time(field: str, value: object) -> None:
    if not (type(value) in (int, float) and math.isfinite(value)):  # type: ignore[arg-type]
        raise _refuse(field, value, "use a finite number of seconds")


def _text(field: str, value: object, optional: bool = False) -> None:
    if value is None and optional:
        return
    checks.check_text(field, value)
    if len(value) > MAX_TEXT:  # type: ignore[arg-type]
        raise _refuse(field, value, f"use at most {MAX_TEXT} characters")


def check_report(report: AutoscalerReport) -> None:
    """Every field of an autoscaler's report, before anything is written."""
    _text("autoscaler name", report.name)
    _text("autoscaler host", report.host)
    _count("autoscaler pid", report.pid)
    _count("autoscaler min_replicas", report.min_replicas)
    _count("autoscaler max_replicas", report.max_replicas, max(report.min_replicas, 1))
    _count("autoscaler desired", report.desired)
    _count("autoscaler current", report.current)
    if report.metric_desired is not None:
        _count("autoscaler metric_desired", report.metric_desired)
    _text("autoscaler reason", report.reason)
    _text("autoscaler limited_by", report.limited_by, optional=True)
    if report.last_scale_at is not None:
        _time("autoscaler last_scale_at", report.last_scale_at)
    _time("autoscaler stale_after", report.stale_after)
    if report.stale_after <= 0:
        raise _refuse("autoscaler stale_after", report.stale_after, "use a number > 0")
    if not isinstance(report.metrics, tuple) or len(report.metrics) > MAX_METRICS:
        raise _refuse("autoscaler metrics", report.metrics, f"use a tuple of at most {MAX_METRICS}")
    for m in report.metrics:
        if not isinstance(m, AutoscalerMetric):
            raise _refuse("autoscaler metrics", m, "use AutoscalerMetric values")
        _text("autoscaler metric", m.metric)
        _text("autoscaler metric current", m.current, optional=True)
        _text("autoscaler metric target", m.target, optional=True)
        _text("autoscaler metric error", m.error, optional=True)
        if m.proposal is not None:
            _count("autoscaler metric proposal", m.proposal)


def encode(report: AutoscalerReport) -> str:
    fields: dict[str, Any] = {
        "name": report.name,
        "host": report.host,
        "pid": report.pid,
        "desired": report.desired,
        "current": report.current,
        "min_replicas": report.min_replicas,
        "max_replicas": report.max_replicas,
        "reason": report.reason,
        "metric_desired": report.metric_desired,
        "limited_by": report.limited_by,
        "metrics": [
            {
                "metric": m.metric,
                "current": m.current,
                "target": m.target,
                "proposal": m.proposal,
                "error": m.error,
            }
            for m in report.metrics
        ],
        "last_scale_at": report.last_scale_at,
        "stale_after": report.stale_after,
    }
    return json.dumps(fields, separators=(",", ":"))


def _opt_int(value: Any) -> int | None:
    return None if value is None else int(value)


def _opt_str(value: Any) -> str | None:
    return None if value is None else str(value)


def decode(text: str, updated_at: float) -> AutoscalerRecord:
    d = json.loads(text)
    report = AutoscalerReport(
        name=str(d["name"]),
        host=str(d["host"]),
        pid=int(d["pid"]),
        desired=int(d["desired"]),
        current=int(d["current"]),
        min_replicas=int(d["min_replicas"]),
        max_replicas=int(d["max_replicas"]),
        reason=str(d["reason"]),
        metric_desired=_opt_int(d.get("metric_desired")),
        limited_by=_opt_str(d.get("limited_by")),
        metrics=tuple(
            AutoscalerMetric(
                metric=str(m["metric"]),
                current=_opt_str(m.get("current")),
                target=_opt_str(m.get("target")),
                proposal=_opt_int(m.get("proposal")),
                error=_opt_str(m.get("error")),
            )
            for m in d.get("metrics", ())
        ),
        last_scale_at=None if d.get("last_scale_at") is None else float(d["last_scale_at"]),
        stale_after=float(d["stale_after"]),
    )
    return AutoscalerRecord(report, float(updated_at))
