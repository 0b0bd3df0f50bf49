"""``faena exporter celery``: ``celery_queue_length`` for an existing Celery/Airflow broker."""

from __future__ import annotations

import threading

import click

from faena.cli.options import log_options, warn_exposed
from faena.observability import logs
from faena.shutdown import on_stop_signals


@click.group("exporter")
def exporter() -> None:
    """Prometheus exporters for systems faena runs next to."""


@exporter.command("celery")
@click.option(
    "--broker",
    required=True,
    envvar="FAENA_CELERY_BROKER_URL",
    show_envvar=True,
    help="The Celery app's broker_url: redis://host:6379/0 or amqp://user:pass@host:5672/vhost.",
)
@click.option(
    "--queues",
    default="",
    envvar="FAENA_CELERY_QUEUES",
    show_envvar=True,
    help="Comma-separated queues (default: discovered from kombu's bindings on Redis, "
    "'celery' on RabbitMQ).",
)
@click.option(
    "--port",
    type=click.IntRange(min=0, max=65535),
    default=9808,
    envvar="FAENA_EXPORTER_PORT",
    show_envvar=True,
    show_default=True,
    help="Port for /metrics (0: any free port).",
)
@click.option(
    "--addr",
    default="127.0.0.1",
    envvar="FAENA_EXPORTER_ADDR",
    show_envvar=True,
    show_default=True,
    help="Address for /metrics (0.0.0.0 for a Prometheus on another machine: a warning).",
)
@click.option(
    "--key-prefix",
    default="",
    envvar="FAENA_CELERY_KEY_PREFIX",
    show_envvar=True,
    help="Redis only: kombu's global_keyprefix, if your Celery app sets one.",
)
@log_options
def celery(
    broker: str,
    queues: str,
    port: int,
    addr: str,
    key_prefix: str,
    log_format: str,
    log_level: str,
) -> None:
    """Serve celery_queue_length{queue} (and celery_active_consumer_count on RabbitMQ), read
    from the broker at every scrape, on /metrics. Run one per broker: it describes the
    broker, not a worker. Stops on SIGTERM or SIGINT."""
    from faena.observability.celery_exporter import CeleryQueueCollector
    from faena.observability.metrics import new_registry
    from faena.observability.metrics_http import serve

    logs.configure(log_format, log_level)
    names = [q.strip() for q in queues.split(",") if q.strip()]
    collector = CeleryQueueCollector(broker, names, key_prefix)
    registry = new_registry()
    registry.register(collector)
    stop = threading.Event()
    on_stop_signals(lambda _count: stop.set())
    warn_exposed("the Celery exporter's /metrics", addr, "--addr")
    server = serve(registry, port, addr)
    click.echo(f"celery exporter: {server.url}/metrics", err=True)
    try:
        while not stop.wait(1.0):
            pass
    finally:
        server.close()
        collector.close()


commands = [exporter]
