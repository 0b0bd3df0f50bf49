"""``faena pools``, ``faena queues`` and ``faena migrate``."""

from __future__ import annotations

import click

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


@click.command()
@app_option
@broker_option
@json_option
def queues(app_path: str | None, broker: str | None, as_json: bool) -> None:
    """Queue depth (waiting now, scheduled for later, running) and oldest waiting job's age."""
    stats = existing_app(app_path, broker).broker.queue_stats()
    if as_json:
        emit_json(
            [
                {
                    "queue": s.queue,
                    "waiting": s.waiting,
                    "scheduled": s.scheduled,
                    "running": s.running,
                    "oldest_age_seconds": round(s.oldest_age, 3),
                }
                for s in stats
            ]
        )
        return
    table(
        ["queue", "waiting", "scheduled", "running", "oldest wait"],
        [[s.queue, s.waiting, s.scheduled, s.running, f"{s.oldest_age:.1f}s"] for s in stats],
    )


@click.command()
@broker_option
def migrate(broker: str | None) -> None:
    """Create or upgrade the broker's schema (workers also do it on start)."""
    app = app_for(None, broker)
    app.broker.setup()
    click.echo(f"{app.store}: schema up to date")


commands = [pools, queues, migrate]
