"""Printing tables and JSON for the CLI."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

import click

from faena.core.job import Job


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    cells = [[str(h) for h in headers]] + [["" if c is None else str(c) for c in r] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    for n, row in enumerate(cells):
        click.echo("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
        if n == 0:
            click.echo("  ".join("-" * w for w in widths))


def job_dict(job: Job) -> dict[str, Any]:
    data = asdict(job)
    data["state"] = job.state.value
    data["args"] = job.args
    data["kwargs"] = job.kwargs
    data["result"] = job.result
    for key in ("args_json", "kwargs_json", "result_json"):
        data.pop(key)
    return data


def emit_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, default=str))


def ago(ts: float | None) -> str:
    if ts is None:
        return ""
    delta = time.time() - ts
    if delta < 0:
        return f"in {-delta:.0f}s"
    if delta < 120:
        return f"{delta:.0f}s ago"
    if delta < 7200:
        return f"{delta / 60:.0f}m ago"
    return f"{delta / 3600:.1f}h ago"
