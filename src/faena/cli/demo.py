"""``faena demo``: ``faena up`` on the demo app, with a load that makes it scale."""

from __future__ import annotations

import sys

import click

from faena.cli.options import web_missing


@click.command()
@click.option(
    "--days",
    type=click.IntRange(min=1, max=28),
    default=14,
    envvar="FAENA_DEMO_DAYS",
    show_envvar=True,
    show_default=True,
    help="Days of data to process (each day: 6 tables x (extract, load, 3 checks)); the "
    "first two trickle in, the rest arrive as a backfill burst.",
)
@click.option(
    "--concurrency",
    type=click.IntRange(min=1),
    default=4,
    envvar="FAENA_DEMO_CONCURRENCY",
    show_envvar=True,
    show_default=True,
    help="Jobs each worker runs at once (few: the burst then needs more workers).",
)
@click.option(
    "--max-workers",
    type=click.IntRange(min=1, max=32),
    default=4,
    envvar="FAENA_DEMO_MAX_WORKERS",
    show_envvar=True,
    show_default=True,
    help="The autoscaler's maxReplicas.",
)
@click.option(
    "--port",
    type=click.IntRange(min=0, max=65535),
    default=8000,
    envvar="FAENA_DEMO_PORT",
    show_envvar=True,
    show_default=True,
    help="Port of the console and the API on 127.0.0.1 (a free one if it is taken; 0: any).",
)
@click.option(
    "--serve",
    is_flag=True,
    envvar="FAENA_DEMO_SERVE",
    show_envvar=True,
    help="After the report, keep the platform running (console, API, one worker) until Ctrl-C.",
)
def demo(days: int, concurrency: int, max_workers: int, port: int, serve: bool) -> None:
    """Run the platform ('faena up') on the demo app on SQLite: the console URL to open, an
    ETL + data-quality load through etl_pool (24) and dq_pool (8) with a burst that makes the
    autoscaler scale out and back in, retries, a poison job that ends dead, progress, and a
    report with the scale events."""
    try:  # the web extra: the demo is faena up, its console included
        import uvicorn  # noqa: F401
    except ImportError as exc:
        raise web_missing("demo", exc) from exc
    from faena.demo.run import run_demo

    sys.exit(
        run_demo(
            days=days,
            concurrency=concurrency,
            max_workers=max_workers,
            host="127.0.0.1",
            port=port,
            serve=serve,
        )
    )


commands = [demo]
