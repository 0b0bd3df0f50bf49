"""``faena demo``: the main job on the embedded default."""

from __future__ import annotations

import click


@click.command()
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=3,
    envvar="FAENA_DEMO_WORKERS",
    show_envvar=True,
    show_default=True,
    help="Worker processes to start.",
)
@click.option(
    "--concurrency",
    type=click.IntRange(min=1),
    default=16,
    envvar="FAENA_DEMO_CONCURRENCY",
    show_envvar=True,
    show_default=True,
)
@click.option(
    "--days",
    type=click.IntRange(min=1, max=28),
    default=14,
    envvar="FAENA_DEMO_DAYS",
    show_envvar=True,
    show_default=True,
    help="Days of data to process (each day: 6 tables x (extract, load, 3 checks)).",
)
def demo(workers: int, concurrency: int, days: int) -> None:
    """Run a realistic ETL + data-quality load through etl_pool (24) and dq_pool (8) on
    SQLite with a few workers: retries, a poison job that ends dead, progress and a report."""
    from faena.demo.run import run_demo

    run_demo(workers, concurrency, days, keep=True)


commands = [demo]
