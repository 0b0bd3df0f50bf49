"""``faena``: the command group. Each command lives in its own module of this package and
exports ``commands``; this file only gathers them."""

from __future__ import annotations

import importlib
import sys

import click

from faena.errors import FaenaError

#: modules that contribute commands; a module not present in this build is skipped
COMMAND_MODULES = (
    "faena.cli.worker",
    "faena.cli.jobs",
    "faena.cli.admin",
    "faena.cli.demo",
    "faena.cli.simulate",
    "faena.cli.autoscale",
    "faena.cli.server",
    "faena.cli.exporter",
)

EXIT_OK = 0
EXIT_FAILURE = 1  # a faena error: the message says what and how to fix it
EXIT_USAGE = 2  # bad command-line usage (click's own code)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="faena")
def cli() -> None:
    """faena: durable background jobs with pools, leases, autoscaling and Camunda tasks.

    Exit codes: 0 success, 1 a faena error (the message names the problem and the fix),
    2 bad usage.
    """


def _register() -> None:
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:
                continue
            raise
        for command in getattr(module, "commands", None) or [getattr(module, name.rsplit(".")[-1])]:
            cli.add_command(command)


_register()


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
