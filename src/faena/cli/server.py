"""``faena server [APP]``: the HTTP server (API, health, Camunda ``/engine-rest``)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import click

from faena.cli.options import (
    app_for,
    check_exposure,
    http_options,
    insecure_option,
    log_options,
    web_missing,
)
from faena.cli.schedules import no_scheduler_option, scheduler_running
from faena.cli.zeebe import zeebe_options, zeebe_running
from faena.observability import logs

#: how long open requests (a pending long poll) may take after SIGTERM
SHUTDOWN_GRACE_SECONDS = 5


@click.command()
@click.argument("app_path", metavar="[APP]", required=False, envvar="FAENA_APP")
@http_options
@click.option(
    "--broker",
    envvar="FAENA_BROKER_URL",
    show_envvar=True,
    default=None,
    help="Broker URL, overriding the app's (default: the app's, else sqlite:///faena.db).",
)
@click.option(
    "--token",
    envvar="FAENA_TOKEN",
    show_envvar=True,
    default=None,
    help="Require 'Authorization: Bearer TOKEN' on every route but /healthz "
    "(the Camunda routes take HTTP basic with TOKEN as password).",
)
@click.option(
    "--admin-token-file",
    envvar="FAENA_ADMIN_TOKEN_FILE",
    show_envvar=True,
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="File holding the admin token: every route (or the token itself in FAENA_ADMIN_TOKEN).",
)
@click.option(
    "--read-token-file",
    envvar="FAENA_READ_TOKEN_FILE",
    show_envvar=True,
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="File holding the read-only token: GET routes only (or the token in FAENA_READ_TOKEN).",
)
@click.option(
    "--no-auth",
    is_flag=True,
    envvar="FAENA_NO_AUTH",
    show_envvar=True,
    help="With no token configured, let anyone who reaches the server enqueue, retry, cancel "
    "and resize pools through /api/v1 (without it those routes answer 403).",
)
@click.option(
    "--camunda-user",
    envvar="FAENA_CAMUNDA_USER",
    show_envvar=True,
    default=None,
    help="HTTP basic user for /engine-rest (with --camunda-password).",
)
@click.option(
    "--camunda-password",
    envvar="FAENA_CAMUNDA_PASSWORD",
    show_envvar=True,
    default=None,
    help="HTTP basic password for /engine-rest.",
)
@insecure_option
@no_scheduler_option
@zeebe_options
@log_options
def server(
    app_path: str | None,
    host: str,
    port: int,
    broker: str | None,
    token: str | None,
    admin_token_file: str | None,
    read_token_file: str | None,
    no_auth: bool,
    camunda_user: str | None,
    camunda_password: str | None,
    insecure: bool,
    no_scheduler: bool,
    log_format: str,
    log_level: str,
    **zeebe: Any,
) -> None:
    """Serve the HTTP API, /healthz, /readyz and the Camunda 7 external-task API.

    APP is module:attribute, like uvicorn (optional: without it the server works the broker
    given by --broker). Camunda clients use http://HOST:PORT/engine-rest as their base URL.
    """
    try:  # the web extra: uvicorn and starlette
        import uvicorn  # noqa: F401  (asked first: faena.cli.serving may be imported already)

        from faena.cli.serving import serve
        from faena.web import create_app
    except ImportError as exc:
        raise web_missing("server", exc) from exc

    if (camunda_user is None) != (camunda_password is None):
        raise click.UsageError("give both --camunda-user and --camunda-password, or neither")
    admin_token = token_from("admin", admin_token_file, "FAENA_ADMIN_TOKEN")
    read_token = token_from("read", read_token_file, "FAENA_READ_TOKEN")
    logs.configure(log_format, log_level)
    check_exposure(host, token or admin_token or read_token, insecure)
    app = app_for(app_path, broker)
    auth = (camunda_user, camunda_password) if camunda_user and camunda_password else None
    asgi = create_app(
        app,
        token=token,
        admin_token=admin_token,
        read_token=read_token,
        no_auth=no_auth,
        camunda_auth=auth,
    )
    admins = tuple(t for t in (admin_token, token) if t)
    with (
        scheduler_running(app, "server", disabled=no_scheduler),
        zeebe_running(app, host, admins, zeebe),
    ):
        serve(asgi, host, port, grace_seconds=SHUTDOWN_GRACE_SECONDS)


def token_from(kind: str, path: str | None, env: str) -> str | None:
    """The ``kind`` token: from the file at ``path`` or the variable ``env`` (not both)."""
    value = os.environ.get(env) or None
    if path is None:
        return value.strip() if value else None
    if value is not None:
        raise click.UsageError(f"give the {kind} token in --{kind}-token-file or {env}, not both")
    text = Path(path).read_text(encoding="utf-8").strip()
    if not text:
        raise click.UsageError(f"--{kind}-token-file {path} is empty: write the token into it")
    return text


commands = [server]
