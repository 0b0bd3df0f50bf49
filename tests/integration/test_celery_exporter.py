"""The Celery exporter against a real Celery producer on real Redis and RabbitMQ: N tasks sent
with no consumer read as N, priority sub-queues included."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from tests.conftest import need, port_open
from tests.integration.test_metrics_support import FAENA, http_get, stop_worker, wait_for

from faena.observability.celery_exporter import CeleryQueueCollector
from faena.observability.metrics import new_registry, render

REDIS = "redis://127.0.0.1:6379/14"
AMQP = "amqp://guest:guest@127.0.0.1:5672//"


def gauges(text: str, name: str) -> dict[str, float]:
    return {
        s.labels.get("queue", ""): s.value
        for f in text_string_to_metric_families(text)
        for s in f.samples
        if s.name == name
    }


def scrape(collector: CeleryQueueCollector) -> str:
    registry = new_registry(process=False)
    registry.register(collector)
    return render(registry).decode()


def send(broker: str, plan: dict[str, list[int | None]]) -> Any:
    """Publish one task per entry, with its priority, to each queue; nothing consumes them."""
    need(
        importlib.util.find_spec("celery") is not None,
        "celery is not installed (pip install -e '.[dev]')",
    )
    import celery

    app = celery.Celery("producer", broker=broker)
    app.conf.broker_connection_retry_on_startup = False
    if broker.startswith("amqp"):
        # AMQP publishes are asynchronous: wait for the broker's confirm, or a passive
        # declare on another connection may run before the messages are routed
        app.conf.broker_transport_options = {"confirm_publish": True}
    for queue, priorities in plan.items():
        for i, priority in enumerate(priorities):
            options = {} if priority is None else {"priority": priority}
            app.send_task("etl.load", args=[i], queue=queue, **options)
    app.close()
    return app


@pytest.fixture
def queues() -> list[str]:
    tag = uuid.uuid4().hex[:8]
    return [f"etl_{tag}", f"dq_{tag}"]


@pytest.fixture
def redis_queues(queues: list[str]) -> Iterator[list[str]]:
    need(port_open("127.0.0.1", 6379), "Redis is not running on 127.0.0.1:6379")
    import redis

    yield queues
    client = redis.Redis.from_url(REDIS)
    for queue in queues:
        client.delete(queue, *[f"{queue}\x06\x16{p}" for p in range(1, 10)])
    client.close()


@pytest.mark.redis
def test_redis_queue_length_counts_priority_sub_queues(redis_queues: list[str]) -> None:
    etl, dq = redis_queues
    # 5 plain + 4 with priorities (kombu files them under etl\x06\x163, \x06\x166, \x06\x169)
    send(REDIS, {etl: [None] * 5 + [3, 5, 7, 9], dq: [None, None, None]})
    missing = f"nothing_{uuid.uuid4().hex[:6]}"
    collector = CeleryQueueCollector(REDIS, [etl, dq, missing])
    try:
        text = scrape(collector)
    finally:
        collector.close()
    assert gauges(text, "celery_queue_length") == {etl: 9, dq: 3, missing: 0}
    assert gauges(text, "faena_exporter_broker_up") == {"": 1}


@pytest.mark.redis
def test_redis_queues_are_discovered_from_kombu_bindings(redis_queues: list[str]) -> None:
    etl, dq = redis_queues
    send(REDIS, {etl: [None, None], dq: [None]})
    collector = CeleryQueueCollector(REDIS)
    try:
        found = gauges(scrape(collector), "celery_queue_length")
    finally:
        collector.close()
    assert found[etl] == 2
    assert found[dq] == 1


@pytest.fixture
def amqp_queues(queues: list[str]) -> Iterator[list[str]]:
    need(port_open("127.0.0.1", 5672), "RabbitMQ is not running on 127.0.0.1:5672")
    yield queues
    import amqp

    conn = amqp.Connection("127.0.0.1:5672", userid="guest", password="guest")
    conn.connect()
    channel = conn.channel()
    for queue in queues:
        channel.queue_delete(queue)
    conn.close()


@pytest.mark.rabbitmq
def test_rabbitmq_queue_length_from_a_passive_declare(amqp_queues: list[str]) -> None:
    etl, dq = amqp_queues
    send(AMQP, {etl: [None] * 4 + [5], dq: [None] * 2})
    missing = f"nothing_{uuid.uuid4().hex[:6]}"
    collector = CeleryQueueCollector(AMQP, [etl, missing, dq])  # a 404 mid-list recovers
    try:
        text = scrape(collector)
    finally:
        collector.close()
    assert gauges(text, "celery_queue_length") == {etl: 5, dq: 2, missing: 0}
    assert gauges(text, "celery_active_consumer_count") == {etl: 0, dq: 0, missing: 0}


def test_broker_down_reads_as_up_0_not_a_failed_scrape() -> None:
    collector = CeleryQueueCollector("redis://127.0.0.1:1/0", ["etl"])
    text = scrape(collector)
    assert gauges(text, "faena_exporter_broker_up") == {"": 0}
    assert gauges(text, "celery_queue_length") == {}


def test_unsupported_url_is_refused_with_the_fix() -> None:
    from faena.errors import ConfigError

    with pytest.raises(ConfigError, match="redis://host:6379/0 or amqp://"):
        CeleryQueueCollector("sqs://queue")


@pytest.mark.redis
@pytest.mark.slow
def test_cli_serves_the_gauge(redis_queues: list[str]) -> None:
    etl, dq = redis_queues
    send(REDIS, {etl: [None] * 7})
    proc = subprocess.Popen(
        [FAENA, "exporter", "celery", "--broker", REDIS, "--queues", f"{etl},{dq}",
         "--port", "0", "--addr", "127.0.0.1", "--log-format", "json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()
        match = re.search(r"http://127\.0\.0\.1:(\d+)/metrics", line)
        assert match, line
        url = f"http://127.0.0.1:{match.group(1)}"
        wait_for(lambda: http_get(url + "/metrics")[0] == 200, 10, "the exporter")
        text = http_get(url + "/metrics")[1]
        assert gauges(text, "celery_queue_length") == {etl: 7, dq: 0}
        assert "process_resident_memory_bytes" in text
    finally:
        stop_worker(proc)
    assert proc.returncode == 0
