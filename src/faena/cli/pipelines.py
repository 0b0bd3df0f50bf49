"""``faena pipelines list / runs / show / retry / cancel / backfill``: a thin shell over
:mod:`faena.pipelines` and the broker's pipeline calls."""

from __future__ import annotations

import datetime as dt
from typing import Any

import click

from faena.cli.options import (
    app_for,
    app_option,
    broker_option,
    existing_app,
    json_option,
    say_store,
)
from faena.cli.render import emit_json, table
from faena.core.runs import RunRecord
from faena.errors import ConfigError, JobNotFoundError
from faena.pipelines import declared
from faena.pipelines.backfill import backfill as run_backfill


def run_dict(run: RunRecord) -> dict[str, Any]:
    return {
        "id": run.id,
        "pipeline": run.pipeline,
        "key": run.key,
        "state": run.state.value,
        "created_at": run.created_at,
        "finished_at": run.finished_at,
        "steps": [
            {
                "name": s.name,
                "job_id": s.job_id,
                "upstreams": list(s.upstreams),
                "rule": s.rule.value,
                "state": None if s.state is None else s.state.value,
                "waiting": s.waiting,
                "error_type": s.error_type,
            }
            for s in run.steps
        ],
    }


def _run_rows(runs: list[RunRecord]) -> list[list[str]]:
    return [[r.id, r.pipeline, r.key, r.state.value, str(len(r.steps))] for r in runs]


@click.group()
def pipelines() -> None:
    """Pipelines declared in the app and their runs."""


@pipelines.command("list")
@app_option
@broker_option
@json_option
def list_pipelines(app_path: str | None, broker: str | None, as_json: bool) -> None:
    """The pipelines the app declares, with their steps."""
    app = existing_app(app_path, broker)
    found = declared(app)
    rows = [{"name": p.name, "steps": [s.name for s in p.ordered()]} for p in found.values()]
    if as_json:
        emit_json(rows)
        return
    table(["PIPELINE", "STEPS"], [[r["name"], " ".join(r["steps"])] for r in rows])


@pipelines.command("runs")
@click.argument("name", required=False)
@click.option("--limit", type=click.IntRange(1, 1000), default=50, show_default=True)
@app_option
@broker_option
@json_option
def runs(
    name: str | None, limit: int, app_path: str | None, broker: str | None, as_json: bool
) -> None:
    """Runs, newest first (of pipeline NAME, or all)."""
    found = existing_app(app_path, broker).broker.list_runs(pipeline=name, limit=limit)
    if as_json:
        emit_json([run_dict(r) for r in found])
        return
    table(["RUN", "PIPELINE", "KEY", "STATE", "STEPS"], _run_rows(found))


def _get(app_path: str | None, broker: str | None, run_id: str) -> tuple[Any, RunRecord]:
    app = existing_app(app_path, broker)
    run = app.broker.get_run(run_id)
    if run is None:
        raise JobNotFoundError(f"no pipeline run {run_id}; list runs with 'faena pipelines runs'")
    return app, run


@pipelines.command("show")
@click.argument("run_id")
@app_option
@broker_option
def show(run_id: str, app_path: str | None, broker: str | None) -> None:
    """A run and each step's state (JSON)."""
    emit_json(run_dict(_get(app_path, broker, run_id)[1]))


@pipelines.command("retry")
@click.argument("run_id")
@app_option
@broker_option
def retry(run_id: str, app_path: str | None, broker: str | None) -> None:
    """Run the failed and skipped steps of a run again; succeeded steps are kept."""
    app, _ = _get(app_path, broker, run_id)
    emit_json(run_dict(app.broker.retry_run(run_id)))


@pipelines.command("cancel")
@click.argument("run_id")
@app_option
@broker_option
def cancel(run_id: str, app_path: str | None, broker: str | None) -> None:
    """Cancel a run's pending steps and ask its running ones to stop."""
    app, _ = _get(app_path, broker, run_id)
    emit_json(run_dict(app.broker.cancel_run(run_id)))


@pipelines.command("backfill")
@click.argument("name")
@click.option("--start", required=True, type=click.DateTime(["%Y-%m-%d"]))
@click.option("--end", required=True, type=click.DateTime(["%Y-%m-%d"]))
@click.option("--param", default="day", show_default=True, help="The date's parameter name.")
@app_option
@broker_option
@json_option
def backfill(
    name: str,
    start: dt.datetime,
    end: dt.datetime,
    param: str,
    app_path: str | None,
    broker: str | None,
    as_json: bool,
) -> None:
    """One run of pipeline NAME per date from --start to --end (each under its own run key:
    a backfill run again creates nothing new). Like ``faena enqueue``, it opens the app's
    store as a producer does (its pools declared)."""
    app = app_for(app_path, broker)
    say_store(app)
    found = declared(app)
    if name not in found:
        known = ", ".join(sorted(found)) or "none"
        raise ConfigError(f"the app declares no pipeline {name!r} (it declares: {known})")
    made = run_backfill(found[name], start.date(), end.date(), param)
    if as_json:
        emit_json([run_dict(r) for r in made])
        return
    new = sum(r.created for r in made)
    click.echo(f"{len(made)} runs of {name}: {new} created, {len(made) - new} kept already")


commands = [pipelines]
