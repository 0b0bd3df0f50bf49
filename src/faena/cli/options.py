"""Options shared by commands, and loading ``module:attr`` apps like uvicorn does."""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click

from faena.app import App
from faena.errors import ConfigError

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
    """The app named by ``APP``, or a bare app on ``--broker`` for commands that only inspect."""
    app = load_app(path) if path else App(broker=broker)
    if path and broker:
        app.use_broker(broker)
    return app


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
        help="module:attr of the faena.App (needed to apply its pools; optional for inspection).",
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
        help="Address to bind (0.0.0.0 to accept other machines).",
    )(f)
