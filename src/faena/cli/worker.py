"""``faena worker APP``: one worker process, or several under one supervisor."""

from __future__ import annotations

import os
import signal
import sys
import threading
from typing import Any

import click

from faena.app import App
from faena.cli.options import broker_option, import_object, load_app, log_options, warn_exposed
from faena.cli.schedules import NO_SCHEDULER_ENV, no_scheduler_option, scheduler_running
from faena.core.options import Isolation
from faena.errors import ConfigError
from faena.observability import logs
from faena.worker.runtime import DEFAULT_CONCURRENCY, DEFAULT_GRACE_SECONDS, Prefetch, Worker


class PrefetchType(click.ParamType[Prefetch]):
    """``auto`` or a number of jobs >= 0."""

    name = "auto|N"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> Prefetch:
        if isinstance(value, int) and not isinstance(value, bool):
            number = value
        elif str(value).strip().lower() == "auto":
            return "auto"
        else:
            try:
                number = int(str(value).strip())
            except ValueError:
                self.fail(
                    f"{value!r} is neither 'auto' nor a whole number of jobs >= 0", param, ctx
                )
        if number < 0:
            self.fail(
                f"{number} is not >= 0: use 0 to turn the prefetch off, or 'auto'", param, ctx
            )
        return number


@click.command()
@click.argument("app_path", metavar="APP", envvar="FAENA_APP")
@click.option(
    "--queues",
    "-q",
    envvar="FAENA_QUEUES",
    show_envvar=True,
    default=None,
    help="Comma-separated queues to consume (default: every queue of the app's tasks).",
)
@click.option(
    "--concurrency",
    "-c",
    type=click.IntRange(min=1),
    default=DEFAULT_CONCURRENCY,
    envvar="FAENA_CONCURRENCY",
    show_envvar=True,
    show_default=True,
    help="Jobs this worker runs at once.",
)
@click.option(
    "--prefetch",
    type=PrefetchType(),
    default="auto",
    envvar="FAENA_PREFETCH",
    show_envvar=True,
    show_default=True,
    help="Jobs each worker process claims ahead of a free slot, so a slot whose job ends "
    "starts the next at once and the broker gets one call for several jobs. 'auto': only "
    "while recent jobs are short against the broker round trip (up to 4 per slot), never "
    "a pooled job, none after a long job; N: always N; 0: off. Prefetched jobs hold a "
    "lease while they wait; SIGTERM releases them at once.",
)
@click.option(
    "--processes",
    "-p",
    type=click.IntRange(min=1),
    default=1,
    envvar="FAENA_PROCESSES",
    show_envvar=True,
    show_default=True,
    help="Worker processes sharing --concurrency (as Celery's prefork pool): jobs run in "
    "parallel across processes. Each is a whole worker; this one supervises them.",
)
@click.option(
    "--isolation",
    type=click.Choice([i.value for i in Isolation]),
    default=None,
    envvar="FAENA_ISOLATION",
    show_envvar=True,
    help="Force an executor for every task (default: each task's own; async for "
    "coroutines, thread otherwise).",
)
@click.option(
    "--grace",
    type=click.FloatRange(min=0),
    default=DEFAULT_GRACE_SECONDS,
    envvar="FAENA_GRACE",
    show_envvar=True,
    show_default=True,
    help="Seconds running jobs get to finish after SIGTERM before they are released.",
)
@click.option(
    "--lease",
    type=click.FloatRange(min=0.5),
    default=None,
    envvar="FAENA_LEASE",
    show_envvar=True,
    help="Lease seconds (default: the app's, 30).",
)
@click.option(
    "--metrics-port",
    type=click.IntRange(min=0, max=65535),
    default=0,
    envvar="FAENA_METRICS_PORT",
    show_envvar=True,
    show_default=True,
    help="Serve Prometheus /metrics on this port (0: off).",
)
@click.option(
    "--metrics-addr",
    default="127.0.0.1",
    envvar="FAENA_METRICS_ADDR",
    show_envvar=True,
    show_default=True,
    help="Address for /metrics (0.0.0.0 for a Prometheus on another machine or pod: a warning).",
)
@click.option(
    "--metrics-announce",
    type=click.Path(dir_okay=False),
    default=None,
    hidden=True,  # set by the --processes supervisor for its children
    help="Serve /metrics on a free loopback port and write the port to this file.",
)
@no_scheduler_option
@log_options
@broker_option
def worker(
    app_path: str,
    queues: str | None,
    concurrency: int,
    prefetch: Prefetch,
    processes: int,
    isolation: str | None,
    grace: float,
    lease: float | None,
    metrics_port: int,
    metrics_addr: str,
    metrics_announce: str | None,
    no_scheduler: bool,
    log_format: str,
    log_level: str,
    broker: str | None,
) -> None:
    """Run one worker process for APP (module:attr).

    APP may also name a faena.camunda.ExternalTaskClient with subscriptions: the worker then
    works Camunda topics (of a Camunda 7 engine or of 'faena server').

    SIGTERM or SIGINT: stop claiming at once, give running jobs --grace seconds, release the
    rest (no attempt consumed), exit 0. A second signal releases at once.

    With --processes N this command supervises N worker processes sharing --concurrency, and
    forwards the signals to them; its --metrics-port serves their metrics merged.

    An app that declares schedules (app.schedule) has them run in each worker process (each
    tick enqueued once however many run them); --no-scheduler turns that off.
    """
    logs.configure(log_format, log_level)
    logs.capture_uncaught()
    if metrics_port:
        warn_exposed("the worker's /metrics", metrics_addr, "--metrics-addr")
    if processes > 1:
        if no_scheduler:  # the children inherit it
            os.environ[NO_SCHEDULER_ENV] = "1"
        children = {
            "queues": queues,
            "prefetch": prefetch,
            "isolation": isolation,
            "grace": grace,
            "lease": lease,
            "log_format": log_format,
            "log_level": log_level,
            "broker": broker,
        }
        metrics = (metrics_port, metrics_addr)
        sys.exit(_supervise(app_path, concurrency, processes, metrics, children))
    if not isinstance(import_object(app_path), App):
        from faena.camunda import ExternalTaskClient, run_subscriptions

        target = import_object(app_path)
        if isinstance(target, ExternalTaskClient):
            sys.exit(run_subscriptions(target))
    app = load_app(app_path)
    if broker:
        app.use_broker(broker)
    if lease is not None:
        app.lease_seconds = lease
    queue_list = [q.strip() for q in queues.split(",") if q.strip()] if queues else None
    w = Worker(
        app,
        queues=queue_list,
        concurrency=concurrency,
        prefetch=prefetch,
        isolation=isolation,
        grace=grace,
        log_sink=logs.EVENT_LINES,  # configured above
    )
    server = None
    if metrics_port or metrics_announce:
        from faena.observability.metrics import start_worker_metrics

        if metrics_announce:  # a child of --processes: its supervisor scrapes it
            from faena.observability.metrics_merge import announce

            server = start_worker_metrics(app, w, 0, "127.0.0.1")
            announce(metrics_announce, server.port)
        else:
            server = start_worker_metrics(app, w, metrics_port, metrics_addr)
    try:
        with scheduler_running(app, "worker", disabled=no_scheduler):
            code = w.run()
    finally:
        # every job is reported or released: a signal that comes while the process exits
        # (a supervisor passes each one on) must not turn a clean stop into death by signal
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            signal.signal(signal.SIGINT, signal.SIG_IGN)
        if server is not None:
            server.close()
        app.close()
    sys.exit(code)


def _supervise(
    app_path: str,
    concurrency: int,
    processes: int,
    metrics: tuple[int, str],
    children: dict[str, Any],
) -> int:
    """Run ``processes`` workers of ``app_path`` sharing ``concurrency``; ``children``: the
    options each is given (see :func:`faena.worker.prefork.child_command`). ``metrics``:
    the port (0: none) and address where the children's metrics are served merged."""
    from faena.worker.prefork import Supervisor, child_command, split_concurrency

    try:
        shares = split_concurrency(concurrency, processes)
    except ConfigError as exc:
        raise click.UsageError(str(exc)) from exc
    port, addr = metrics
    if not port:
        return Supervisor([child_command(app_path, n, **children) for n in shares]).run()

    import tempfile
    from pathlib import Path

    from prometheus_client import CollectorRegistry

    from faena.observability.metrics_http import serve
    from faena.observability.metrics_merge import ChildrenCollector

    with tempfile.TemporaryDirectory(prefix="faena-metrics-") as where:
        files = [Path(where) / f"process-{i}.json" for i in range(processes)]
        commands = [
            child_command(app_path, n, metrics_announce=str(f), **children)
            for n, f in zip(shares, files, strict=True)
        ]
        supervisor = Supervisor(commands)
        collector = ChildrenCollector(files)
        registry = CollectorRegistry()
        registry.register(collector)
        server = serve(
            registry, port, addr, ready=lambda: not supervisor.stopping and collector.all_ready()
        )
        try:
            return supervisor.run()
        finally:
            server.close()
            collector.close()


commands = [worker]
