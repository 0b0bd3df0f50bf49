"""The demo's report: jobs by state, retries, wait and run times, the dead job and how to
inspect it, and the autoscaler's scale events (time, from -> to workers, the reason)."""

from __future__ import annotations

import os
import shlex
import shutil
import statistics
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import click

from faena.autoscale.autoscaler import Decision
from faena.autoscale.hpa import ControllerConfig
from faena.autoscale.spec import HPASpec
from faena.autoscale.state import held_by
from faena.core.job import Job
from faena.core.runs import RunRecord
from faena.core.states import JobState


def percentile(values: list[float], p: float) -> float:
    if not values:
        return 0.0
    values = sorted(values)
    return values[min(len(values) - 1, round(p / 100 * (len(values) - 1)))]


def faena_command() -> str:
    """How to run ``faena`` again, as this process was run: the executable it was started
    as (``.venv/bin/faena`` from ``make demo``), bare ``faena`` only when that is the one the
    shell finds, else the ``faena`` beside this Python or ``python -m faena.cli.main``."""
    argv0 = sys.argv[0] if sys.argv else ""
    candidates = [argv0] if Path(argv0).name == "faena" else []
    candidates.append(str(Path(sys.executable).parent / "faena"))
    for candidate in candidates:
        path = Path(candidate)
        if path.is_file() and os.access(path, os.X_OK):
            on_path = shutil.which("faena")
            if on_path is not None and Path(on_path).resolve() == path.resolve():
                return "faena"
            return shlex.quote(candidate)
    return f"{shlex.quote(sys.executable)} -m faena.cli.main"


def scale_line(d: Decision, t0: float, spec: HPASpec) -> str:
    """``+12.0 s  scale 1 -> 3 workers: ScaleUpLimit (scaleUp policy ...); metrics want 17``"""
    held = held_by(d, spec, ControllerConfig().tolerance)
    why = f" ({held})" if held else ""
    return (
        f"+{d.at - t0:5.1f} s  scale {d.current} -> {d.desired} workers: {d.reason}{why}; "
        f"metrics want {d.metric_desired}"
    )


def report(
    jobs: list[Job],
    elapsed: float,
    broker_url: str,
    decisions: Sequence[Decision],
    t0: float,
    spec: HPASpec,
    runs_of: Sequence[RunRecord] = (),
) -> None:
    by_state = Counter(j.state.value for j in jobs)
    done = [j for j in jobs if j.state is JobState.SUCCEEDED]
    # from when it could start: its enqueue, a step's release by its upstreams, a retry's time
    waits = [(j.started_at or 0) - max(j.enqueued_at, j.run_at) for j in done]
    runs = [(j.finished_at or 0) - (j.started_at or 0) for j in done]
    click.echo("\n== faena demo report ==")
    click.echo(f"jobs: {len(jobs)} in {elapsed:.1f} s -> {len(jobs) / elapsed:.1f} jobs/s")
    for state in JobState:
        if by_state.get(state.value):
            click.echo(f"  {state.value:<10} {by_state[state.value]}")
    retried = sum(1 for j in jobs if j.attempt > 1)
    click.echo(f"  retried    {retried} (succeeded after a failed attempt or ended dead)")
    click.echo(
        f"wait (due -> start):     p50 {percentile(waits, 50) * 1000:.0f} ms, "
        f"p95 {percentile(waits, 95) * 1000:.0f} ms"
    )
    mean = statistics.fmean(runs or [0.0])
    click.echo(
        f"run time:                p50 {percentile(runs, 50) * 1000:.0f} ms, "
        f"p95 {percentile(runs, 95) * 1000:.0f} ms (mean {mean * 1000:.0f} ms)"
    )
    if runs_of:
        states = Counter(r.state.value for r in runs_of)
        counts = ", ".join(f"{n} {state}" for state, n in sorted(states.items()))
        click.echo(f"pipeline runs: {len(runs_of)} of etl_daily ({counts})")
        for r in runs_of:
            if r.state.value != "succeeded":
                click.echo(f"  {r.key} {r.state.value}: {faena_command()} pipelines show {r.id} "
                           f"--broker {broker_url}")  # fmt: skip
    scales = [d for d in decisions if d.rescale]
    peak = max([d.desired for d in scales], default=None)
    click.echo(f"scale events: {len(scales)}" + (f" (peak {peak} workers)" if scales else ""))
    for d in scales:
        click.echo("  " + scale_line(d, t0, spec))
    for j in jobs:
        if j.state is JobState.DEAD and j.error is not None:
            click.echo(
                f"dead: {j.task} {j.args or j.kwargs} after {j.tries} attempts: {j.error.type}: "
                f"{j.error.message}"
            )
            click.echo(f"      inspect: {faena_command()} jobs show {j.id} --broker {broker_url}")
