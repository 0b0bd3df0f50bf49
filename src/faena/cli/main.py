"""``faena``: the command group. Each command lives in its own module of this package and
exports ``commands``; this file only gathers them."""

from __future__ import annotations

import importlib
import sys
from importlib.util import find_spec

import click

from faena.errors import FaenaError

#: each command and the module that defines it (imported only when the command runs, so
#: ``faena worker`` does not load the autoscaler or the web server); a module not present in
#: this build is skipped
COMMANDS = {
    "worker": "faena.cli.worker",
    "enqueue": "faena.cli.jobs",
    "jobs": "faena.cli.jobs",
    "pools": "faena.cli.admin",
    "queues": "faena.cli.admin",
    "workers": "faena.cli.admin",
    "migrate": "faena.cli.admin",
    "demo": "faena.cli.demo",
    "simulate": "faena.cli.simulate",
    "autoscale": "faena.cli.autoscale",
    "up": "faena.cli.up",
    "server": "faena.cli.server",
    "exporter": "faena.cli.exporter",
    "schedules": "faena.cli.schedules",
    "bench": "faena.cli.bench",
    "pipelines": "faena.cli.pipelines",
}
COMMAND_MODULES = tuple(dict.fromkeys(COMMANDS.values()))
#: each command's summary (its help's first paragraph), so that ``faena --help`` lists the
#: commands without importing their modules (tests/unit/test_core.py keeps them equal)
SUMMARIES = {
    "worker": "Run one worker process for APP (module:attr).",
    "enqueue": "Enqueue a job of TASK with JSON arguments; print its id.",
    "jobs": "Inspect and act on jobs.",
    "pools": "Show pool sizes and slots in use (or 'pools set NAME SIZE').",
    "queues": (
        "Queue depth (waiting now, scheduled for later, running), oldest waiting job's age and "
        "whether the queue is paused (or 'queues pause NAME', 'queues resume NAME')."
    ),
    "workers": (
        "Worker processes in the registry: running, draining, stopped, or lost (silent for a "
        "lease); records of workers gone for a day are pruned when a worker starts."
    ),
    "migrate": "Create or upgrade the broker's schema (workers also do it on start).",
    "demo": (
        "Run the platform ('faena up') on the demo app on SQLite: the console URL to open, an ETL"
        " + data-quality load through etl_pool (24) and dq_pool (8) with a burst that makes the "
        "autoscaler scale out and back in, retries, a poison job that ends dead, progress, and a "
        "report with the scale events."
    ),
    "simulate": (
        "Replay a load through HPA manifests on a virtual clock and report what they would do."
    ),
    "autoscale": (
        "Run between minReplicas and maxReplicas 'faena worker APP' processes, scaled by the HPA "
        "manifest with the Kubernetes HPA's exact algorithm."
    ),
    "up": (
        "Run the whole platform for APP on one machine: the HTTP server (API, the console at /, "
        "/metrics, Camunda routes at /engine-rest), the app's schedules and the supervisor of "
        "autoscaled workers. It logs the console's URL (event up.started). SIGTERM/SIGINT drains "
        "the workers and stops it all (exit 0)."
    ),
    "server": "Serve the HTTP API, /healthz, /readyz and the Camunda 7 external-task API.",
    "exporter": "Prometheus exporters for systems faena runs next to.",
    "schedules": (
        "List APP's schedules: expression, time zone, next tick, the last tick the store recorded"
        " (fired, or armed) and when, the missed-tick policy and what each fires."
    ),
    "bench": (
        "Measure a broker: enqueue one by one and in batches, the drain of one 'faena worker' "
        "process, and enqueue-to-start latency; then print a summary table (--json: an object)."
    ),
    "pipelines": "Pipelines declared in the app and their runs.",
}

EXIT_OK = 0
EXIT_FAILURE = 1  # a faena error: the message says what and how to fix it
EXIT_USAGE = 2  # bad command-line usage (click's own code)


def module_commands(module_name: str) -> dict[str, click.Command]:
    """The commands a module exports (``commands``, or one named like the module); none if
    the module is not in this build."""
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name == module_name:
            return {}
        raise
    found = getattr(module, "commands", None) or [getattr(module, module_name.rsplit(".")[-1])]
    return {command.name or "": command for command in found}


class FaenaFailure(click.ClickException):
    """A :class:`FaenaError` out of a command: ``error: MESSAGE`` on stderr, exit code 1 (the
    same under ``main()`` and under click's own runner, as in tests)."""

    exit_code = EXIT_FAILURE

    def show(self, file: object = None) -> None:
        click.echo(f"error: {self.message}", err=True)


class _LazyGroup(click.Group):
    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except FaenaError as exc:
            raise FaenaFailure(str(exc)) from exc

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(name for name in COMMANDS if self.get_command(ctx, name) is not None)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The listing of ``faena --help`` from :data:`SUMMARIES`: a module that is not in this
        build is left out, and none is imported (``--help`` took ~0.5 s importing them all)."""
        present = [name for name, module in COMMANDS.items() if find_spec(module) is not None]
        listing = click.Group(commands=[click.Command(n, help=SUMMARIES[n]) for n in present])
        listing.format_commands(ctx, formatter)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        module_name = COMMANDS.get(cmd_name)
        if module_name is None:
            return None
        return module_commands(module_name).get(cmd_name)


@click.group(
    cls=_LazyGroup,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.version_option(package_name="faena")
def cli() -> None:
    """faena: durable background jobs with pools, leases, autoscaling and Camunda tasks.

    Exit codes: 0 success (or stopped by SIGTERM), 1 a faena error (the message names the
    problem and the fix), 2 bad usage or an address faena server cannot listen on, 3 faena
    server could not start its application.
    """


def main() -> None:
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(EXIT_FAILURE)
    except FaenaError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_FAILURE)


if __name__ == "__main__":
    main()
