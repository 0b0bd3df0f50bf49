"""``faena bench --broker URL``: enqueue, drain and latency against a broker, to size a
deployment (faena.benchmark)."""

from __future__ import annotations

import sys
from typing import Any

import click

from faena.cli.options import json_option
from faena.cli.render import emit_json


@click.command()
@click.option(
    "--broker",
    envvar="FAENA_BROKER_URL",
    show_envvar=True,
    required=True,
    help="The broker to measure (sqlite:///PATH, postgresql://...?schema=NAME, "
    "redis://HOST:6379/0?prefix=NAME). Its jobs stay in it as succeeded jobs of a queue of "
    "their own, pruned by the retention: point it at a scratch schema, prefix or file.",
)
@click.option(
    "--jobs",
    type=click.IntRange(min=100, max=10_000_000),
    default=10_000,
    show_default=True,
    help="No-op jobs enqueued in batches and drained (plus up to 1,000 enqueued one by one).",
)
@click.option(
    "--concurrency",
    type=click.IntRange(min=1, max=1024),
    default=2,
    show_default=True,
    help="The worker's concurrency (one worker process).",
)
@click.option(
    "--latency-samples",
    type=click.IntRange(min=0, max=100_000),
    default=200,
    show_default=True,
    help="Jobs enqueued one at a time to the idle worker for enqueue-to-start latency.",
)
@json_option
def bench(broker: str, jobs: int, concurrency: int, latency_samples: int, as_json: bool) -> None:
    """Measure a broker: enqueue one by one and in batches, the drain of one 'faena worker'
    process, and enqueue-to-start latency; then print a summary table (--json: an object).

    Progress goes to stderr. The repository's bench/ harness compares faena with other job
    queues; this command sizes your own deployment."""
    from faena.benchmark.run import run_bench, table

    bars: dict[str, tuple[Any, list[int]]] = {}  # phase: (click's bar, [position])
    said: list[str] = []

    def progress(phase: str, done: int, total: int) -> None:
        if not sys.stderr.isatty():  # no bar: one line a phase
            if phase not in said:
                said.append(phase)
                click.echo(f"{phase}: {total:,} jobs", err=True)
            return
        if phase not in bars:
            bar = click.progressbar(length=total, label=f"{phase:<20}", file=sys.stderr)
            bar.__enter__()
            bars[phase] = (bar, [0])
        bar, pos = bars[phase]
        bar.update(done - pos[0])
        pos[0] = done
        if done >= total:
            bar.__exit__(None, None, None)

    report = run_bench(
        broker, jobs=jobs, concurrency=concurrency, latency_samples=latency_samples,
        progress=progress,
    )  # fmt: skip
    if as_json:
        emit_json(report.as_dict())
    else:
        click.echo(table(report))


commands = [bench]
