"""Options shared by commands, and loading ``module:attr`` apps like uvicorn does."""

from __future__ import annotations

import importlib
import logging
import os
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click

from faena.app import App
from faena.errors import ConfigError
from faena.observability.log_lines import FIELDS_ATTR

F = TypeVar("F", bound=Callable[..., Any])


def import_object(path: str) -> Any:
    """Import ``module:attr`` (attr defaults to ``app``) with the current folder importable."""
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    module_name, _, attr = path.partition(":")
    attr = attr or "app"
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        raise ConfigError(
            f"cannot import app module {module_name!r} ({exc}); APP is module:attribute, e.g. "
            f"'myproject.jobs:app', importable from the current folder or PYTHONPATH"
        ) from exc
    return getattr(module, attr, None)


def load_app(path: str) -> App:
    """The :class:`App` that ``module:attr`` names."""
    module_name, _, attr = path.partition(":")
    attr = attr or "app"
    app = import_object(path)
    if not isinstance(app, App):
        raise ConfigError(
            f"{path!r}: {module_name}.{attr} is {type(app).__name__}, not a faena.App; "
            f"point APP at the object created with faena.App(...)"
        )
    app.import_path = f"{module_name}:{attr}"
    return app


def app_for(path: str | None, broker: str | None) -> App:
    """The app named by ``APP``, or a bare app on ``--broker`` for commands that only inspect.
    A broker the command opens itself (the bare app's, or ``--broker`` in place of the app's
    own) is closed when the command ends."""
    app = load_app(path) if path else App(broker=broker)
    if path and broker:
        app.use_broker(broker)
    if broker or not path:
        ctx = click.get_current_context(silent=True)
        if ctx is not None:
            ctx.call_on_close(app.close)
    return app


def say_store(app: App) -> None:
    """Tell the user (on stderr: stdout stays the command's output) which store is used."""
    click.echo(f"store: {app.store}", err=True)


def existing_app(path: str | None, broker: str | None) -> App:
    """The app for commands that read or act on jobs already there (``jobs``, ``pools``,
    ``queues``): it never creates a store (a missing SQLite file is refused) and never applies
    the app's pools or parallelism. Says on stderr which store it uses."""
    app = app_for(path, broker)
    app.open_existing()
    say_store(app)
    return app


#: the warnings of this module are log events (they come out as JSON lines under --log-format
#: json); before logs are configured, Python's last-resort handler writes them on stderr
_cli_log = logging.getLogger("faena.cli")

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "::1", "localhost", "ip6-localhost"})


def is_loopback(host: str) -> bool:
    """Whether binding ``host`` accepts connections from this machine only."""
    import ipaddress

    if host in LOOPBACK_HOSTS:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def warn_exposed(what: str, host: str, option: str) -> None:
    """Warn that a read-only listener accepts other machines: a warning log event
    (``listener.exposed``), so that under ``--log-format json`` it is a JSON line like every
    other (a container's log collector parses each line); call it once logs are configured."""
    if not is_loopback(host):
        _cli_log.warning(
            f"{what} listens on {host}, reachable from other machines, with no "
            f"authentication (queue names, pool sizes and job counts are readable by anyone "
            f"who can reach it); bind {option} 127.0.0.1 unless a network policy or a "
            f"firewall limits who can connect",
            extra={"event": "listener.exposed", FIELDS_ATTR: {"host": host, "option": option}},
        )


def insecure_option(f: F) -> F:
    return click.option(
        "--insecure-no-token",
        "insecure",
        is_flag=True,
        envvar="FAENA_INSECURE_NO_TOKEN",
        show_envvar=True,
        help="Serve a non-loopback --host without --token: anyone who can reach it may "
        "enqueue, retry and cancel jobs. Only behind a proxy that authenticates.",
    )(f)


def check_exposure(host: str, token: str | None, insecure: bool) -> None:
    """Refuse an HTTP server that other machines reach with no token (its routes enqueue,
    retry and cancel jobs), unless ``--insecure-no-token`` says so; then warn."""
    if token or is_loopback(host):
        return
    if not insecure:
        raise click.UsageError(
            f"--host {host} accepts other machines, and the API's routes enqueue, retry and "
            f"cancel jobs: give a token (--token or FAENA_TOKEN; clients send 'Authorization: "
            f"Bearer TOKEN'), bind --host 127.0.0.1, or pass --insecure-no-token if a proxy in "
            f"front authenticates"
        )
    _cli_log.warning(
        f"the HTTP API listens on {host} with no token (--insecure-no-token): anyone "
        f"who can reach it may enqueue, retry and cancel jobs",
        extra={"event": "listener.insecure_no_token", FIELDS_ATTR: {"host": host}},
    )


def web_missing(command: str, exc: ImportError) -> ConfigError:
    """The error for ``faena server`` / ``faena up`` without the ``web`` extra."""
    return ConfigError(
        f"faena {command} needs the HTTP server, which is not installed ({exc}); "
        f"pip install 'faena[web]'"
    )


def broker_option(f: F) -> F:
    return click.option(
        "--broker",
        envvar="FAENA_BROKER_URL",
        show_envvar=True,
        default=None,
        help="Broker URL (default: the app's, else sqlite:///faena.db).",
    )(f)


def app_option(f: F) -> F:
    return click.option(
        "--app",
        "app_path",
        envvar="FAENA_APP",
        show_envvar=True,
        default=None,
        help="module:attr of the faena.App: its broker is used (required by enqueue).",
    )(f)


def json_option(f: F) -> F:
    return click.option(
        "--json",
        "as_json",
        is_flag=True,
        envvar="FAENA_JSON",
        show_envvar=True,
        help="Print JSON instead of a table.",
    )(f)


def log_options(f: F) -> F:
    """``--log-format`` and ``--log-level``, shared by every long-running command."""
    f = click.option(
        "--log-level",
        type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False),
        default="INFO",
        envvar="FAENA_LOG_LEVEL",
        show_envvar=True,
        show_default=True,
        help="DEBUG, INFO, WARNING or ERROR.",
    )(f)
    return click.option(
        "--log-format",
        type=click.Choice(["auto", "json", "console"]),
        default="auto",
        envvar="FAENA_LOG_FORMAT",
        show_envvar=True,
        show_default=True,
        help="JSON lines, or console lines (auto: console when stdout is a terminal).",
    )(f)


def http_options(f: F) -> F:
    """``--host`` and ``--port`` of faena's HTTP server (``server``, ``up``)."""
    f = click.option(
        "--port",
        type=click.IntRange(min=0, max=65535),
        default=8080,
        envvar="FAENA_PORT",
        show_envvar=True,
        show_default=True,
        help="Port of the HTTP server.",
    )(f)
    return click.option(
        "--host",
        default="127.0.0.1",
        envvar="FAENA_HOST",
        show_envvar=True,
        show_default=True,
        help="Address to bind (0.0.0.0 to accept other machines: then --token is required).",
    )(f)
