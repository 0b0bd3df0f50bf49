"""``faena server [APP]``: the HTTP server (API, health, Camunda ``/engine-rest``)."""

from __future__ import annotations

import click

from faena.cli.options import (
    app_for,
    check_exposure,
    http_options,
    insecure_option,
    log_options,
    web_missing,
)
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
@log_options
def server(
    app_path: str | None,
    host: str,
    port: int,
    broker: str | None,
    token: str | None,
    camunda_user: str | None,
    camunda_password: str | None,
    insecure: bool,
    log_format: str,
    log_level: str,
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
    check_exposure(host, token, insecure)
    logs.configure(log_format, log_level)
    app = app_for(app_path, broker)
    auth = (camunda_user, camunda_password) if camunda_user and camunda_password else None
    asgi = create_app(app, token=token, camunda_auth=auth)
    serve(asgi, host, port, grace_seconds=SHUTDOWN_GRACE_SECONDS)


commands = [server]
