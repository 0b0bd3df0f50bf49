"""``faena pools``, ``faena queues`` (and pausing one), ``faena workers`` and ``faena migrate``."""

from __future__ import annotations

import click

from faena.brokers.protocol import QueueStat
from faena.cli.options import app_for, app_option, broker_option, existing_app, json_option
from faena.cli.render import emit_json, table


@click.group(invoke_without_command=True)
@app_option
@broker_option
@json_option
@click.pass_context
def pools(ctx: click.Context, app_path: str | None, broker: str | None, as_json: bool) -> None:
    """Show pool sizes and slots in use (or 'pools set NAME SIZE')."""
    ctx.obj = (app_path, broker)
    if ctx.invoked_subcommand is not None:
        return
    stats = existing_app(app_path, broker).broker.pool_stats()  # never applies the app's sizes
    if as_json:
        emit_json([{"pool": p.pool, "size": p.size, "used": p.used} for p in stats])
        return
    table(
        ["pool", "size", "used", "free"], [[p.pool, p.size, p.used, p.size - p.used] for p in stats]
    )


@pools.command("set")
@click.argument("name")
@click.argument("size", type=click.IntRange(min=1))
@app_option
@broker_option
@click.pass_obj
def set_pool(
    obj: tuple[str | None, str | None],
    name: str,
    size: int,
    app_path: str | None,
    broker: str | None,
) -> None:
    """Create pool NAME or resize it to SIZE slots, at least 1 (running jobs keep theirs).
    An app that declares NAME sets its own size again when a worker or producer starts."""
    app = existing_app(app_path or obj[0], broker or obj[1])
    app.broker.set_pools({name: size})
    click.echo(f"pool {name} has {size} slots")


@click.group(invoke_without_command=True)
@app_option
@broker_option
@json_option
@click.pass_context
def queues(ctx: click.Context, app_path: str | None, broker: str | None, as_json: bool) -> None:
    """Queue depth (waiting now, scheduled for later, running), oldest waiting job's age and
    whether the queue is paused (or 'queues pause NAME', 'queues resume NAME')."""
    ctx.obj = (app_path, broker)
    if ctx.invoked_subcommand is not None:
        return
    store = existing_app(app_path, broker).broker
    stats = {s.queue: s for s in store.queue_stats()}
    paused = store.paused_queues()
    for name in paused - stats.keys():  # a paused queue without jobs is listed too
        stats[name] = QueueStat(name, 0, 0, 0, 0.0)
    shown = [stats[name] for name in sorted(stats)]
    if as_json:
        emit_json(
            [
                {
                    "queue": s.queue,
                    "waiting": s.waiting,
                    "scheduled": s.scheduled,
                    "running": s.running,
                    "oldest_age_seconds": round(s.oldest_age, 3),
                    "paused": s.queue in paused,
                }
                for s in shown
            ]
        )
        return
    table(
        ["queue", "waiting", "scheduled", "running", "oldest wait", "paused"],
        [
            [
                s.queue,
                s.waiting,
                s.scheduled,
                s.running,
                f"{s.oldest_age:.1f}s",
                "yes" if s.queue in paused else "no",
            ]
            for s in shown
        ],
    )


@queues.command("pause")
@click.argument("name")
@app_option
@broker_option
@click.pass_obj
def pause_queue(
    obj: tuple[str | None, str | None], name: str, app_path: str | None, broker: str | None
) -> None:
    """Stop workers from claiming jobs of queue NAME until it is resumed: running jobs finish,
    new jobs wait. The pause is kept in the store (workers and restarts honour it)."""
    app = existing_app(app_path or obj[0], broker or obj[1])
    if app.broker.pause_queue(name):
        click.echo(f"queue {name} paused: no job of it is claimed until 'faena queues resume'")
    else:
        click.echo(f"queue {name} was paused already")


@queues.command("resume")
@click.argument("name")
@app_option
@broker_option
@click.pass_obj
def resume_queue(
    obj: tuple[str | None, str | None], name: str, app_path: str | None, broker: str | None
) -> None:
    """Let workers claim jobs of queue NAME again (they are woken at once)."""
    app = existing_app(app_path or obj[0], broker or obj[1])
    if app.broker.resume_queue(name):
        click.echo(f"queue {name} resumed")
    else:
        click.echo(f"queue {name} was not paused")


@click.command()
@app_option
@broker_option
@json_option
def workers(app_path: str | None, broker: str | None, as_json: bool) -> None:
    """Worker processes in the registry: running, draining, stopped, or lost (silent for a
    lease); records of workers gone for a day are pruned when a worker starts."""
    app = existing_app(app_path, broker)
    now = app.clock.now()
    records = app.broker.list_workers()
    if as_json:
        emit_json(
            [
                {
                    "id": r.report.id,
                    "host": r.report.host,
                    "pid": r.report.pid,
                    "queues": list(r.report.queues),
                    "concurrency": r.report.concurrency,
                    "version": r.report.version,
                    "started_at": r.report.started_at,
                    "seen_at": r.seen_at,
                    "state": r.state_at(now),
                }
                for r in records
            ]
        )
        return
    table(
        ["worker", "state", "queues", "concurrency", "version", "last seen"],
        [
            [
                r.report.id,
                r.state_at(now),
                ",".join(r.report.queues),
                r.report.concurrency,
                r.report.version,
                f"{max(now - r.seen_at, 0.0):.0f}s ago",
            ]
            for r in records
        ],
    )


@click.command()
@broker_option
def migrate(broker: str | None) -> None:
    """Create or upgrade the broker's schema (workers also do it on start)."""
    app = app_for(None, broker)
    app.broker.setup()
    click.echo(f"{app.store}: schema up to date")


commands = [pools, queues, workers, migrate]
