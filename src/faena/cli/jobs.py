"""``faena enqueue`` and ``faena jobs list/show/retry/cancel`` (one by one, or ``--all``
matching a filter, in batches)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, TypeVar

import click

from faena.brokers.bulk import MAX_BATCH
from faena.cli.options import (
    app_for,
    app_option,
    broker_option,
    existing_app,
    json_option,
    say_store,
)
from faena.cli.render import ago, emit_json, job_dict, table
from faena.core.jsonlimits import JsonLimitError, check_json_text
from faena.core.states import CANCELLABLE, RETRYABLE, JobState, in_order
from faena.errors import JobFailedError, PayloadError, WaitTimeoutError


class ArgumentRefused(click.ClickException):
    """A JSON argument refused before it is parsed: ``error: MESSAGE`` on one line, exit code
    2 (bad usage, as click's own)."""

    exit_code = 2

    def show(self, file: object = None) -> None:
        click.echo(f"error: {self.message}", err=True)


def _json_arg(name: str, text: str, kind: type, max_bytes: int) -> Any:
    """``--args``/``--kwargs``: bounded (the app's payload limit, 64 levels deep) before
    ``json.loads`` runs, then parsed and checked for its type."""
    try:
        check_json_text(f"--{name}", text, max_bytes=max_bytes)
    except JsonLimitError as exc:
        raise ArgumentRefused(f"{exc.message}; nothing was enqueued") from None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise PayloadError(
            f"--{name} is not valid JSON ({exc.msg} at position {exc.pos}): {text!r}; "
            f'example: --args \'["users", 3]\' --kwargs \'{{"day": "2026-11-27"}}\''
        ) from None
    if not isinstance(value, kind):
        want = "an array" if kind is list else "an object"
        raise PayloadError(f"--{name} must be a JSON {want}, got {type(value).__name__}: {text!r}")
    return value


@click.command()
@click.argument("task")
@click.option(
    "--args",
    "args_text",
    default="[]",
    envvar="FAENA_ARGS",
    show_envvar=True,
    help="JSON array of positional arguments.",
)
@click.option(
    "--kwargs",
    "kwargs_text",
    default="{}",
    envvar="FAENA_KWARGS",
    show_envvar=True,
    help="JSON object of keyword arguments.",
)
@click.option(
    "--queue",
    default=None,
    envvar="FAENA_QUEUE",
    show_envvar=True,
    help="Queue (default: the task's).",
)
@click.option("--pool", default=None, envvar="FAENA_POOL", show_envvar=True)
@click.option("--priority", type=int, default=None, envvar="FAENA_PRIORITY", show_envvar=True)
@click.option("--idempotency-key", default=None, envvar="FAENA_IDEMPOTENCY_KEY", show_envvar=True)
@click.option(
    "--delay",
    type=click.FloatRange(min=0),
    default=None,
    envvar="FAENA_DELAY",
    show_envvar=True,
    help="Seconds to wait before the job may run.",
)
@click.option(
    "--wait",
    "wait_s",
    type=click.FloatRange(min=0),
    default=None,
    envvar="FAENA_WAIT",
    show_envvar=True,
    help="Wait up to this many seconds and print the result (with --json: the ended job).",
)
@app_option
@broker_option
@json_option
def enqueue(
    task: str,
    args_text: str,
    kwargs_text: str,
    queue: str | None,
    pool: str | None,
    priority: int | None,
    idempotency_key: str | None,
    delay: float | None,
    wait_s: float | None,
    app_path: str | None,
    broker: str | None,
    as_json: bool,
) -> None:
    """Enqueue a job of TASK with JSON arguments; print its id.

    TASK is the registered name (module.function) or, when one task of the app has it, the
    function's name. --app is required: the task's queue, pool, retries and timeout are in its
    code, and the arguments are checked against its signature before anything is enqueued.
    """
    if not app_path:
        raise click.UsageError(
            f"faena enqueue needs --app module:attr (or FAENA_APP), e.g. --app "
            f"myproject.jobs:app: the task {task!r} takes its queue, pool, retries and timeout "
            f"from its code, and without them the job would run on queue 'default' in pool "
            f"'default_pool'. A producer without the task's code enqueues from Python: "
            f"app.enqueue(name, args, queue=..., pool=..., retries=..., timeout=...)"
        )
    app = app_for(app_path, broker)
    args = _json_arg("args", args_text, list, app.max_payload_bytes)
    kwargs = _json_arg("kwargs", kwargs_text, dict, app.max_payload_bytes)
    name = app.resolve_task_name(task)
    app.check_call(name, args, kwargs)
    say_store(app)
    options: dict[str, Any] = {
        k: v
        for k, v in {
            "queue": queue,
            "pool": pool,
            "priority": priority,
            "idempotency_key": idempotency_key,
            "delay": delay,
        }.items()
        if v is not None
    }
    handle = app.enqueue(name, args, kwargs, **options)
    if wait_s is None:
        if as_json:
            emit_json(job_dict(handle.job))
        else:
            click.echo(handle.id)
        return
    if not as_json:
        click.echo(handle.id)
        click.echo(json.dumps(handle.wait(timeout=wait_s)))
        return
    try:  # one JSON document: the job as the wait left it (state, result or error)
        handle.wait(timeout=wait_s)
    except (JobFailedError, WaitTimeoutError):
        emit_json(job_dict(handle.refresh()))
        raise
    emit_json(job_dict(handle.refresh()))


@click.group()
def jobs() -> None:
    """Inspect and act on jobs."""


@jobs.command("list")
@click.option(
    "--state",
    type=click.Choice([s.value for s in JobState]),
    default=None,
    envvar="FAENA_STATE",
    show_envvar=True,
)
@click.option("--queue", default=None, envvar="FAENA_QUEUE", show_envvar=True)
@click.option("--task", default=None, envvar="FAENA_TASK", show_envvar=True)
@click.option(
    "--limit",
    type=click.IntRange(min=1),
    default=50,
    envvar="FAENA_LIMIT",
    show_envvar=True,
    show_default=True,
)
@app_option
@broker_option
@json_option
def list_jobs(
    state: str | None,
    queue: str | None,
    task: str | None,
    limit: int,
    app_path: str | None,
    broker: str | None,
    as_json: bool,
) -> None:
    """List jobs, newest first."""
    app = existing_app(app_path, broker)
    found = app.broker.list_jobs(
        state=JobState(state) if state else None, queue=queue, task=task, limit=limit
    )
    if as_json:
        emit_json([job_dict(j) for j in found])
        return
    table(
        ["id", "task", "queue", "state", "attempt", "enqueued", "error"],
        [
            [
                j.id,
                j.task,
                j.queue,
                j.state.value,
                f"{j.tries}/{j.max_attempts}",
                ago(j.enqueued_at),
                j.error.type if j.error else "",
            ]
            for j in found
        ],
    )


@jobs.command("show")
@click.argument("job_id")
@app_option
@broker_option
def show(job_id: str, app_path: str | None, broker: str | None) -> None:
    """Show one job as JSON (with its error, traceback and attempt history)."""
    emit_json(job_dict(existing_app(app_path, broker).job(job_id).job))


_F = TypeVar("_F", bound=Callable[..., Any])


def _filters(state: str | None, queue: str | None, task: str | None) -> dict[str, Any]:
    return {"state": JobState(state) if state else None, "queue": queue, "task": task}


def _targets(
    verb: str,
    job_ids: tuple[str, ...],
    all_matching: bool,
    filters: dict[str, Any],
    yes: bool,
) -> bool:
    """Whether the command acts on the jobs matching filters (``--all``) rather than on
    ``job_ids``; refuses a mix, neither, and ``--all`` without a filter unless ``--yes``."""
    given = [f"--{k}" for k, v in filters.items() if v is not None]
    if all_matching and job_ids:
        raise click.UsageError(f"give job ids or --all, not both: faena jobs {verb} --all ...")
    if not all_matching:
        if not job_ids:
            raise click.UsageError(
                f"give the job ids to {verb}, or --all with --state/--queue/--task to {verb} "
                f"every job matching them"
            )
        if given:
            raise click.UsageError(
                f"{', '.join(given)} filter(s) only apply with --all; add --all to {verb} "
                f"every matching job, or drop them to {verb} the job ids given"
            )
        return False
    if not given and not yes:
        raise click.UsageError(
            f"--all without --state, --queue or --task would {verb} every job in the store; "
            f"add a filter, or --yes to {verb} them all"
        )
    return True


def _bulk(call: Any, batch: int, filters: dict[str, Any]) -> int:
    """Call a bulk action until it changes nothing more; the total changed."""
    total = 0
    while changed := call(limit=batch, **filters):
        total += changed
    return total


def _bulk_options(states: list[str]) -> Callable[[_F], _F]:
    def wrap(command: _F) -> _F:
        for option in reversed(
            [
                click.argument("job_ids", nargs=-1),
                click.option(
                    "--all",
                    "all_matching",
                    is_flag=True,
                    envvar="FAENA_ALL",
                    show_envvar=True,
                    help="Act on every job matching --state/--queue/--task, in batches.",
                ),
                click.option(
                    "--state",
                    type=click.Choice(states),
                    default=None,
                    envvar="FAENA_STATE",
                    show_envvar=True,
                ),
                click.option("--queue", default=None, envvar="FAENA_QUEUE", show_envvar=True),
                click.option("--task", default=None, envvar="FAENA_TASK", show_envvar=True),
                click.option(
                    "--yes",
                    is_flag=True,
                    envvar="FAENA_YES",
                    show_envvar=True,
                    help="With --all and no filter: act on every job.",
                ),
                click.option(
                    "--batch",
                    type=click.IntRange(1, MAX_BATCH),
                    default=MAX_BATCH,
                    envvar="FAENA_BATCH",
                    show_envvar=True,
                    show_default=True,
                    help="Jobs changed per broker call with --all.",
                ),
                app_option,
                broker_option,
            ]
        ):
            command = option(command)
        return command

    return wrap


@jobs.command("retry")
@_bulk_options([s.value for s in in_order(RETRYABLE)])
def retry(
    job_ids: tuple[str, ...],
    all_matching: bool,
    state: str | None,
    queue: str | None,
    task: str | None,
    yes: bool,
    batch: int,
    app_path: str | None,
    broker: str | None,
) -> None:
    """Run dead or cancelled jobs again with a fresh budget of attempts: JOB_IDS, or with
    --all every dead or cancelled job matching the filters."""
    filters = _filters(state, queue, task)
    bulk = _targets("retry", job_ids, all_matching, filters, yes)
    app = existing_app(app_path, broker)
    if bulk:
        total = _bulk(app.broker.retry_matching, batch, filters)
        click.echo(f"{total} job{'s' * (total != 1)} queued")
        return
    for job_id in job_ids:
        click.echo(f"{app.retry(job_id).id} queued")


@jobs.command("cancel")
@_bulk_options([s.value for s in in_order(CANCELLABLE)])
def cancel(
    job_ids: tuple[str, ...],
    all_matching: bool,
    state: str | None,
    queue: str | None,
    task: str | None,
    yes: bool,
    batch: int,
    app_path: str | None,
    broker: str | None,
) -> None:
    """Cancel pending jobs; ask running ones to stop: JOB_IDS, or with --all every pending
    or running job matching the filters."""
    filters = _filters(state, queue, task)
    bulk = _targets("cancel", job_ids, all_matching, filters, yes)
    app = existing_app(app_path, broker)
    if bulk:
        total = _bulk(app.broker.cancel_matching, batch, filters)
        click.echo(f"{total} job{'s' * (total != 1)} cancelled or asked to stop")
        return
    for job_id in job_ids:
        job = app.cancel(job_id).job
        click.echo(f"{job.id} {'cancel requested' if job.cancel_requested else 'cancelled'}")


commands = [enqueue, jobs]
