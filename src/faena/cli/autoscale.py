"""``faena autoscale APP --hpa FILE``: worker processes scaled by an HPA manifest (the
supervisor ``faena up`` runs beside its HTTP server, :mod:`faena.cli.up`)."""

from __future__ import annotations

import logging
import os
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any, TypeVar

import click
from prometheus_client import CollectorRegistry

from faena.app import App
from faena.autoscale.autoscaler import Autoscaler
from faena.autoscale.deployment import load_deployment_file
from faena.autoscale.hpa import ControllerConfig
from faena.autoscale.manifest import load_hpa_file
from faena.autoscale.signals import Requests, pitfalls, watched_queues
from faena.autoscale.spec import (
    Behavior,
    ExternalMetric,
    HPASpec,
    LabelRequirement,
    LabelSelector,
    MetricTarget,
)
from faena.autoscale.state import RETENTION_SECONDS, StateReporter
from faena.autoscale.supervisor import Supervisor, SupervisorMetrics, WorkerCommand
from faena.cli.options import (
    broker_option,
    load_app,
    warn_exposed,
)
from faena.observability import logs
from faena.observability.metrics import broker_collector, new_registry
from faena.observability.metrics_http import serve
from faena.shutdown import on_stop_signals
from faena.worker.runtime import DEFAULT_GRACE_SECONDS

F = TypeVar("F", bound=Callable[..., Any])
log = logging.getLogger("faena.autoscale")

#: ``faena up`` without ``--hpa``: waiting jobs per worker, and the most workers
DEFAULT_TARGET_PER_WORKER = 10
DEFAULT_MAX_WORKERS = max(os.cpu_count() or 1, 2)


def supervisor_options(f: F) -> F:
    options = [
        click.option(
            "--deployment",
            type=click.Path(exists=True, dir_okay=False, path_type=Path),
            envvar="FAENA_AUTOSCALE_DEPLOYMENT",
            show_envvar=True,
            default=None,
            help="Deployment manifest: per-worker cpu/memory requests (the denominators of "
            "Utilization targets) and the initial replica count. Default: 1 cpu, 512Mi.",
        ),
        click.option(
            "--sync-period",
            type=click.FloatRange(min=0.1),
            default=15.0,
            envvar="FAENA_AUTOSCALE_SYNC_PERIOD",
            show_envvar=True,
            show_default=True,
            help="Seconds between two reconciles (the HPA controller's sync period).",
        ),
        click.option(
            "--queues",
            "-q",
            envvar="FAENA_QUEUES",
            show_envvar=True,
            default=None,
            help="Comma-separated queues the workers consume (default: every queue of the "
            "app's tasks).",
        ),
        click.option(
            "--concurrency",
            "-c",
            type=click.IntRange(min=1),
            default=None,
            envvar="FAENA_CONCURRENCY",
            show_envvar=True,
            help="Jobs each worker runs at once (default: the worker's, 16).",
        ),
        click.option(
            "--grace",
            type=click.FloatRange(min=0),
            default=DEFAULT_GRACE_SECONDS,
            envvar="FAENA_GRACE",
            show_envvar=True,
            show_default=True,
            help="Seconds a stopped worker's running jobs get to finish before they are "
            "released (SIGKILL after grace + 5 s).",
        ),
        click.option(
            "--pool",
            envvar="FAENA_AUTOSCALE_POOL",
            show_envvar=True,
            default=None,
            help="Label of faena_desired_workers{pool} and prefix of worker names "
            "(default: the HPA's scaleTargetRef name).",
        ),
        click.option(
            "--metrics-port",
            type=click.IntRange(min=0, max=65535),
            default=0,
            envvar="FAENA_AUTOSCALE_METRICS_PORT",
            show_envvar=True,
            show_default=True,
            help="Serve /metrics (faena_desired_workers, faena_workers, queue depth) on this "
            "port (0: off).",
        ),
        click.option(
            "--metrics-addr",
            default="127.0.0.1",
            envvar="FAENA_AUTOSCALE_METRICS_ADDR",
            show_envvar=True,
            show_default=True,
            help="Address for /metrics.",
        ),
        click.option(
            "--log-format",
            type=click.Choice(["auto", "json", "console"]),
            default="auto",
            envvar="FAENA_LOG_FORMAT",
            show_envvar=True,
            show_default=True,
            help="JSON lines or console lines (auto: console on a terminal); workers too.",
        ),
        click.option(
            "--log-level",
            type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False),
            default="INFO",
            envvar="FAENA_LOG_LEVEL",
            show_envvar=True,
            show_default=True,
        ),
        broker_option,
    ]
    for option in reversed(options):
        f = option(f)
    return f


def default_spec(queues: list[str]) -> HPASpec:
    """``faena up`` without a manifest: ceil(waiting / 10) workers over the given queues,
    1..cpu count, default ``behavior`` (scale-down after 5 minutes of lower proposals)."""
    selector = LabelSelector(match_expressions=(LabelRequirement("queue", "In", tuple(queues)),))
    metric = ExternalMetric(
        "celery_queue_length",
        MetricTarget.average_value(DEFAULT_TARGET_PER_WORKER * 1000),
        selector,
    )
    return HPASpec(max_replicas=DEFAULT_MAX_WORKERS, metrics=(metric,), behavior=Behavior())


def queue_list(app: App, queues: str | None) -> list[str]:
    if queues:
        return [q.strip() for q in queues.split(",") if q.strip()]
    return sorted({t.options.queue for t in app.tasks.values()} or {"default"})


def _worker_log_format(fmt: str) -> str:
    if fmt == "auto":
        return "console" if sys.stdout.isatty() else "json"
    return fmt


def run_supervisor(
    app: App,
    app_path: str,
    *,
    spec: HPASpec,
    deployment: Path | None,
    opts: dict[str, Any],
    registry: CollectorRegistry | None = None,
    stop: threading.Event | None = None,
    on_start: Callable[[Supervisor], None] | None = None,
    worker_out: IO[bytes] | None = None,
) -> int:
    """Build the autoscaler and the supervisor from the command's options; run until SIGTERM
    or SIGINT (a second one makes the draining workers release their jobs at once), or until
    ``stop`` is set. ``registry``: export into it (the caller registered the broker's
    collector there); ``on_start`` gets the supervisor before it starts its workers;
    ``worker_out``: where the workers' output goes (default: this process's stdout)."""
    dep = load_deployment_file(deployment) if deployment else None
    queues = queue_list(app, opts["queues"])
    start = dep.replicas if dep is not None else spec.min_replicas
    start = min(max(start, spec.min_replicas), spec.max_replicas)
    autoscaler = Autoscaler(
        spec,
        replicas=start,
        requests=Requests.from_deployment(dep),
        config=ControllerConfig(sync_period_s=opts["sync_period"]),
    )
    pool = opts["pool"] or spec.scale_target.name or "workers"
    known = watched_queues(spec) | set(queues)
    if registry is None:
        registry = new_registry()
        broker_collector(lambda: app.broker, known, registry, app.clock)
    metrics = SupervisorMetrics(registry)
    command = WorkerCommand(
        app_path,
        queues=",".join(queues),
        concurrency=opts["concurrency"],
        grace=opts["grace"],
        broker=opts["broker"],
        log_format=_worker_log_format(opts["log_format"]),
        log_level=opts["log_level"],
    )
    for warning in pitfalls(spec):
        log.warning(warning, extra={"event": "autoscale.pitfall", "pool": pool})
    server = None
    if opts["metrics_port"]:
        warn_exposed("the autoscaler's /metrics", opts["metrics_addr"], "--metrics-addr")
        server = serve(registry, opts["metrics_port"], opts["metrics_addr"])
    state = StateReporter(
        lambda report: app.broker.report_autoscaler(report),
        name=pool,
        spec=spec,
        sync_period=opts["sync_period"],
        tolerance=autoscaler.config.tolerance,
    )
    _prune_old_records(app)
    supervisor = Supervisor(
        autoscaler,
        command,
        queue_stats=lambda: app.broker.queue_stats(),
        known_queues=known,
        pool=pool,
        sync_period=opts["sync_period"],
        metrics=metrics,
        state=state,
        out=worker_out,
    )
    # before "started": a SIGTERM then is handled
    stop = _stop_on_signals(supervisor.hurry, stop)
    log.info(
        f"supervising {pool}: {spec.min_replicas}..{spec.max_replicas} workers on "
        f"{','.join(queues)}, starting {start}, sync every {opts['sync_period']:g}s",
        extra={
            "event": "autoscale.started",
            "pool": pool,
            "min_replicas": spec.min_replicas,
            "max_replicas": spec.max_replicas,
            "replicas": start,
            "queues": queues,
            "metrics_url": server.url if server else None,
        },
    )
    try:
        if on_start is not None:
            on_start(supervisor)
        return supervisor.run(stop)
    finally:
        if server is not None:
            server.close()
        log.info("supervisor stopped", extra={"event": "autoscale.stopped", "pool": pool})


def _prune_old_records(app: App) -> None:
    """Autoscalers gone for a day leave the store (a failure here only leaves them)."""
    try:
        app.broker.prune_autoscalers(app.clock.now() - RETENTION_SECONDS)
    except Exception as exc:
        log.warning(
            "pruning old autoscaler records failed; they stay listed as stale",
            extra={"event": "autoscale.state_failed", "error_type": type(exc).__name__,
                   "error_message": str(exc)},
        )  # fmt: skip


def _stop_on_signals(
    again: Callable[[], None], stop: threading.Event | None = None
) -> threading.Event:
    stop = stop or threading.Event()

    def on_signal(count: int) -> None:
        if count > 1:
            again()
        stop.set()

    on_stop_signals(on_signal)
    return stop


@click.command()
@click.argument("app_path", metavar="APP", envvar="FAENA_APP")
@click.option(
    "--hpa",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    required=True,
    envvar="FAENA_AUTOSCALE_HPA",
    show_envvar=True,
    help="autoscaling/v2 HorizontalPodAutoscaler manifest (the same file the cluster uses).",
)
@supervisor_options
def autoscale(app_path: str, hpa: Path, deployment: Path | None, **opts: Any) -> None:
    """Run between minReplicas and maxReplicas 'faena worker APP' processes, scaled by the
    HPA manifest with the Kubernetes HPA's exact algorithm.

    Every --sync-period: queue depth from the broker (External metric celery_queue_length,
    selector label 'queue'), CPU and memory of each worker (psutil, against the Deployment's
    requests); new workers, or SIGTERM to the newest (graceful drain, no job lost). Every
    decision is logged (event autoscale.decision). SIGTERM/SIGINT: stop every worker
    gracefully, exit 0.
    """
    logs.configure(opts["log_format"], opts["log_level"])
    spec = load_hpa_file(hpa).spec
    app = load_app(app_path)
    if opts["broker"]:
        app.use_broker(opts["broker"])
    try:
        code = run_supervisor(app, app_path, spec=spec, deployment=deployment, opts=opts)
    finally:
        app.close()
    sys.exit(code)


commands = [autoscale]
