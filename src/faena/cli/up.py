"""``faena up APP``: the whole platform for an app on one machine, in one process.

The HTTP server (the ``/api/v1`` API, the console at ``/``, the Camunda 7 routes at
``/engine-rest``, ``/metrics``, ``/healthz``, ``/readyz``) on a thread, and on the main
thread the supervisor of ``faena worker`` processes autoscaled from an HPA manifest (the
autoscaler's state goes to the store: ``GET /api/v1/autoscaler``, the console's workers
page). One ``/metrics`` serves the broker's queues and pools and the supervisor's
``faena_desired_workers`` / ``faena_workers``. ``faena demo`` runs the same on the demo app
(:func:`run_up`).
"""

from __future__ import annotations

import logging
import socket
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import click

from faena.app import App
from faena.autoscale.manifest import load_hpa_file
from faena.autoscale.spec import HPASpec
from faena.autoscale.supervisor import Supervisor
from faena.cli.autoscale import (
    DEFAULT_MAX_WORKERS,
    default_spec,
    queue_list,
    run_supervisor,
    supervisor_options,
)
from faena.cli.options import (
    check_exposure,
    http_options,
    insecure_option,
    load_app,
    web_missing,
)
from faena.cli.schedules import no_scheduler_option, scheduler_running
from faena.cli.zeebe import zeebe_options, zeebe_running
from faena.observability import logs
from faena.observability.metrics import new_registry

log = logging.getLogger("faena.up")
#: seconds the server gets to accept connections before ``faena up`` gives up on it
SERVER_START_SECONDS = 30.0


def _url(host: str, sock: socket.socket) -> str:
    port = sock.getsockname()[1]
    shown = "127.0.0.1" if host in ("0.0.0.0", "") else host
    if ":" in shown:
        shown = f"[{shown}]"
    return f"http://{shown}:{port}"


def run_up(
    app: App,
    app_path: str,
    *,
    spec: HPASpec,
    host: str,
    port: int,
    token: str | None,
    no_auth: bool,
    deployment: Path | None,
    opts: dict[str, Any],
    stop: threading.Event | None = None,
    on_ready: Callable[[str, Supervisor], None] | None = None,
    worker_out: IO[bytes] | None = None,
    no_scheduler: bool = False,
) -> int:
    """Serve HTTP, run the app's schedules (unless ``no_scheduler``) and supervise the
    workers until SIGTERM/SIGINT (or ``stop``); ``on_ready`` gets the base URL and the
    supervisor once the server accepts connections."""
    try:  # the web extra: uvicorn and starlette
        import uvicorn

        from faena.cli.server import SHUTDOWN_GRACE_SECONDS
        from faena.cli.serving import Server, listen
        from faena.web import create_app
    except ImportError as exc:
        raise web_missing("up", exc) from exc

    sock = listen(host, port)  # a taken port: exit 2 naming it, before any worker starts
    url = _url(host, sock)
    registry = new_registry()
    config = uvicorn.Config(
        create_app(app, token=token, no_auth=no_auth, metrics_registry=registry),
        host=host,
        port=sock.getsockname()[1],
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=SHUTDOWN_GRACE_SECONDS,
    )
    server = Server(config)  # off the main thread: installs no signal handlers
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name="faena-http", daemon=True
    )
    thread.start()  # logs server.started once it accepts connections

    def started(supervisor: Supervisor) -> None:
        deadline = time.monotonic() + SERVER_START_SECONDS
        while not server.started and thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.02)
        if not server.started:
            raise click.ClickException(f"the HTTP server did not start on {url}; see its log")
        log.info(
            f"faena up: open the console at {url}/ (API {url}/api/v1, metrics {url}/metrics, "
            f"Camunda clients {url}/engine-rest)",
            extra={"event": "up.started", "url": url, "pool": supervisor.pool},
        )
        if on_ready is not None:
            on_ready(url, supervisor)

    admins = (token,) if token else ()
    try:
        with (
            scheduler_running(app, "up", disabled=no_scheduler),
            zeebe_running(app, host, admins, opts),
        ):
            return run_supervisor(
                app,
                app_path,
                spec=spec,
                deployment=deployment,
                opts=opts,
                registry=registry,
                stop=stop,
                on_start=started,
                worker_out=worker_out,
            )
    finally:
        server.should_exit = True
        thread.join(SHUTDOWN_GRACE_SECONDS + 1)
        sock.close()


@click.command()
@click.argument("app_path", metavar="APP", envvar="FAENA_APP")
@click.option(
    "--hpa",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    envvar="FAENA_UP_HPA",
    show_envvar=True,
    help="HPA manifest for the workers (default: ceil(waiting jobs / 10) workers, "
    f"1..{DEFAULT_MAX_WORKERS}, scale-down after 5 minutes).",
)
@http_options
@click.option(
    "--token",
    envvar="FAENA_TOKEN",
    show_envvar=True,
    default=None,
    help="Require 'Authorization: Bearer TOKEN' on every route but /healthz (as faena server).",
)
@click.option(
    "--no-auth",
    is_flag=True,
    envvar="FAENA_NO_AUTH",
    show_envvar=True,
    help="With no token, let anyone who reaches the server enqueue, retry, cancel and resize "
    "pools through /api/v1 and the console (without it those routes answer 403).",
)
@insecure_option
@no_scheduler_option
@zeebe_options
@supervisor_options
def up(
    app_path: str,
    hpa: Path | None,
    host: str,
    port: int,
    token: str | None,
    no_auth: bool,
    insecure: bool,
    no_scheduler: bool,
    deployment: Path | None,
    **opts: Any,
) -> None:
    """Run the whole platform for APP on one machine: the HTTP server (API, the console at /,
    /metrics, Camunda routes at /engine-rest), the app's schedules and the supervisor of
    autoscaled workers. It logs the console's URL (event up.started). SIGTERM/SIGINT
    drains the workers and stops it all (exit 0)."""
    try:  # the web extra, asked before anything else is done
        import uvicorn  # noqa: F401
    except ImportError as exc:
        raise web_missing("up", exc) from exc
    logs.configure(opts["log_format"], opts["log_level"])
    check_exposure(host, token, insecure)
    app = load_app(app_path)
    if opts["broker"]:
        app.use_broker(opts["broker"])
    spec = load_hpa_file(hpa).spec if hpa else default_spec(queue_list(app, opts["queues"]))
    try:
        code = run_up(
            app,
            app_path,
            spec=spec,
            host=host,
            port=port,
            token=token,
            no_auth=no_auth,
            deployment=deployment,
            opts=opts,
            no_scheduler=no_scheduler,
        )
    finally:
        app.close()
    sys.exit(code)


commands = [up]
