"""Drive the demo: start workers, enqueue the load, show progress, print the report."""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import click

from faena.core.job import Job
from faena.core.states import TERMINAL, JobState

TABLES = ("users", "orders", "payments", "inventory", "sessions", "invoices")
DQ_RULES = ("row_count", "null_ratio", "schema_drift")


def build_load(days: int) -> list[tuple[str, list[object]]]:
    load: list[tuple[str, list[object]]] = []
    for d in range(1, days + 1):
        day = f"2026-11-{d:02d}"
        for table in TABLES:
            load.append(("etl.extract", [table, day]))
            load.append(("etl.load", [table, day]))
            for rule in DQ_RULES:
                load.append(("dq.check", [table, day, rule]))
    return load


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


def report(jobs: list[Job], elapsed: float) -> None:
    by_state = Counter(j.state.value for j in jobs)
    done = [j for j in jobs if j.state is JobState.SUCCEEDED]
    waits = [(j.started_at or 0) - j.enqueued_at for j in done]
    runs = [(j.finished_at or 0) - (j.started_at or 0) for j in done]
    click.echo("\n== faena demo report ==")
    click.echo(f"jobs: {len(jobs)} in {elapsed:.1f} s -> {len(jobs) / elapsed:.1f} jobs/s")
    for state in JobState:
        if by_state.get(state.value):
            click.echo(f"  {state.value:<10} {by_state[state.value]}")
    retried = sum(1 for j in jobs if j.attempt > 1)
    click.echo(f"  retried    {retried} (succeeded after a failed attempt or ended dead)")
    click.echo(
        f"wait (enqueue -> start): p50 {percentile(waits, 50) * 1000:.0f} ms, "
        f"p95 {percentile(waits, 95) * 1000:.0f} ms"
    )
    mean = statistics.fmean(runs or [0.0])
    click.echo(
        f"run time:                p50 {percentile(runs, 50) * 1000:.0f} ms, "
        f"p95 {percentile(runs, 95) * 1000:.0f} ms (mean {mean * 1000:.0f} ms)"
    )
    for j in jobs:
        if j.state is JobState.DEAD and j.error is not None:
            click.echo(
                f"dead: {j.task} {j.args} after {j.tries} attempts: {j.error.type}: "
                f"{j.error.message}"
            )
            click.echo(
                f"      inspect: {faena_command()} jobs show {j.id} "
                f"--broker {os.environ['FAENA_DEMO_BROKER']}"
            )


def run_demo(workers: int, concurrency: int, days: int, keep: bool) -> None:
    folder = Path(tempfile.mkdtemp(prefix="faena-demo-"))
    url = f"sqlite:///{folder / 'faena-demo.db'}"
    os.environ["FAENA_DEMO_BROKER"] = url
    from faena.demo.tasks import app

    click.echo(f"broker: {url}")
    click.echo(
        f"pools: etl_pool=24, dq_pool=8; parallelism 64; {workers} workers x "
        f"concurrency {concurrency}"
    )
    procs = []
    for n in range(workers):
        with open(folder / f"worker-{n}.log", "wb") as log:  # the child writes its own copy
            procs.append(
                subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "faena.cli.main",
                        "worker",
                        "faena.demo.tasks:app",
                        "--concurrency",
                        str(concurrency),
                        "--log-format",
                        "json",
                    ],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=dict(os.environ),
                )
            )
    t0 = time.monotonic()
    try:
        load = build_load(days)
        ids = []
        for task, args in load:
            ids.append(app.enqueue(task, args).id)
        total = len(ids)
        with click.progressbar(length=total, label="jobs finished", show_pos=True) as bar:
            seen = 0
            while seen < total:
                counts = app.broker.count_by_state()
                finished = sum(n for (_q, s), n in counts.items() if s in TERMINAL)
                bar.update(finished - seen)
                seen = finished
                if any(p.poll() is not None for p in procs):
                    raise click.ClickException(f"a worker exited; see its log in {folder}")
                time.sleep(0.2)
        elapsed = time.monotonic() - t0
        jobs = [j for j in (app.broker.get(i) for i in ids) if j is not None]
        report(jobs, elapsed)
        click.echo(f"worker logs (JSON lines): {folder}/worker-*.log")
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            p.wait(40)
        app.close()
        if keep:
            click.echo(f"database kept for inspection: {faena_command()} jobs list --broker {url}")
