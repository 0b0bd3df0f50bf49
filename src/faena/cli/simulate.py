"""``faena simulate``: replay a load through one or more HPA manifests; report and plot."""

from __future__ import annotations

import json
from dataclasses import asdict, replace
from pathlib import Path

import click

from faena.autoscale.deployment import load_deployment_file
from faena.autoscale.manifest import load_hpa_file
from faena.autoscale.sim_load import LoadSpec, load_load_spec, parse_duration
from faena.autoscale.sim_report import (
    format_summaries,
    plot_timeline,
    summarize,
    write_timeline_csv,
)
from faena.autoscale.simulator import Scenario
from faena.autoscale.simulator import simulate as run_simulation
from faena.errors import FaenaError

_FILE = click.Path(exists=True, dir_okay=False, path_type=Path)


def _scenarios(paths: tuple[Path, ...]) -> list[Scenario]:
    hpas = [load_hpa_file(p) for p in paths]
    names = [h.name for h in hpas]
    scenarios = []
    for path, hpa in zip(paths, hpas, strict=True):
        name = hpa.name if names.count(hpa.name) == 1 else f"{hpa.name} ({path.stem})"
        scenarios.append(Scenario(name, hpa.spec))
    return scenarios


def _with_deployment(load: LoadSpec, path: Path | None) -> LoadSpec:
    if path is None:
        return load
    deployment = load_deployment_file(path)
    workers = load.workers
    if deployment.cpu_request_milli is not None:
        workers = replace(workers, cpu_request_milli=deployment.cpu_request_milli)
    if deployment.memory_request_milli is not None:
        workers = replace(workers, memory_request_milli=deployment.memory_request_milli)
    return replace(load, workers=workers)


@click.command("simulate")
@click.option(
    "--hpa",
    "hpa_files",
    type=_FILE,
    multiple=True,
    required=True,
    envvar="FAENA_SIMULATE_HPA",
    show_envvar=True,
    help="HorizontalPodAutoscaler YAML; repeat to compare manifests side by side "
    "(env: whitespace-separated paths).",
)
@click.option(
    "--load",
    "load_file",
    type=_FILE,
    required=True,
    envvar="FAENA_SIMULATE_LOAD",
    show_envvar=True,
    help="Load spec YAML (arrivals, service times, workers, metrics); see docs/autoscaling.md.",
)
@click.option(
    "--duration",
    default="1h",
    show_default=True,
    envvar="FAENA_SIMULATE_DURATION",
    show_envvar=True,
    help="Simulated time: seconds or 90s, 15m, 1h30m.",
)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("faena-simulate"),
    show_default=True,
    envvar="FAENA_SIMULATE_OUT",
    show_envvar=True,
    help="Directory for timeline.csv, timeline.png and summary.json.",
)
@click.option(
    "--deployment",
    "deployment_file",
    type=_FILE,
    default=None,
    envvar="FAENA_SIMULATE_DEPLOYMENT",
    show_envvar=True,
    help="Deployment YAML whose container requests replace the load spec's "
    "(the denominators of Utilization targets).",
)
@click.option(
    "--seed",
    type=int,
    default=None,
    envvar="FAENA_SIMULATE_SEED",
    show_envvar=True,
    help="Random seed; overrides the load spec's.",
)
@click.option(
    "--plot/--no-plot",
    default=True,
    show_default=True,
    envvar="FAENA_SIMULATE_PLOT",
    show_envvar=True,
    help="Write timeline.png (needs matplotlib: pip install 'faena[plot]').",
)
def simulate(
    hpa_files: tuple[Path, ...],
    load_file: Path,
    duration: str,
    out_dir: Path,
    deployment_file: Path | None,
    seed: int | None,
    plot: bool,
) -> None:
    """Replay a load through HPA manifests on a virtual clock and report what they would do.

    Uses the exact Kubernetes HPA algorithm (behavior included). Prints a summary (backlog,
    wait percentiles, burst drain time, replica-seconds, scale events) and writes a CSV
    timeline and a plot of replicas, queue depth and oldest wait.
    """
    try:
        seconds = parse_duration(duration, field_name="--duration")
        load = _with_deployment(
            load_load_spec(load_file, horizon=seconds, seed=seed), deployment_file
        )
        scenarios = _scenarios(hpa_files)
    except FaenaError as exc:
        raise click.ClickException(str(exc)) from exc
    except OSError as exc:
        raise click.ClickException(f"cannot read an input file: {exc}") from exc
    results = run_simulation(load, scenarios, seconds)
    summaries = [summarize(r) for r in results]
    click.echo(format_summaries(summaries))
    out_dir.mkdir(parents=True, exist_ok=True)
    write_timeline_csv(results, out_dir / "timeline.csv")
    (out_dir / "summary.json").write_text(
        json.dumps([asdict(s) for s in summaries], indent=2) + "\n", encoding="utf-8"
    )
    written = ["timeline.csv", "summary.json"]
    if plot:
        try:
            plot_timeline(
                results, out_dir / "timeline.png", title=" vs ".join(s.name for s in scenarios)
            )
            written.append("timeline.png")
        except ImportError:
            click.echo("note: no plot, matplotlib is missing (pip install 'faena[plot]')", err=True)
    click.echo(f"\nwrote {', '.join(written)} to {out_dir}")


commands = [simulate]
