"""``celery_queue_length{queue}`` for an existing Celery (or Airflow CeleryExecutor) broker.

The length is read from the broker itself at scrape time, the only place it exists:

* **Redis** (kombu's redis transport): a queue is a list named after it, plus one list per
  priority step, ``queue + "\\x06\\x16" + step`` (kombu's ``sep``; steps 0, 3, 6, 9 by default,
  0-9 when ``priority_steps=list(range(10))``). The length is the sum of ``LLEN`` over all of
  them, so messages sent with a priority are not missed (the classic "always 0" bug).
  Unacknowledged messages (kombu's ``unacked`` hash) are running, not waiting.
* **RabbitMQ**: a passive ``queue.declare`` returns the ready message count (and the consumer
  count, exported as ``celery_active_consumer_count``) without creating the queue.

A queue that does not exist reads 0. ``--queues`` names the queues; without it Redis queues are
discovered from kombu's ``_kombu.binding.*`` sets, and RabbitMQ defaults to ``celery``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, cast
from urllib.parse import unquote, urlsplit

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from faena.errors import ConfigError

_log = logging.getLogger("faena.exporter")

KOMBU_SEP = "\x06\x16"
#: every step kombu can be configured with (a list that does not exist has LLEN 0)
PRIORITY_STEPS = tuple(range(10))
BINDING_PREFIX = "_kombu.binding."
DEFAULT_QUEUE = "celery"


@dataclass(frozen=True, slots=True)
class QueueDepth:
    queue: str
    waiting: int
    consumers: int | None = None  # known on RabbitMQ only


class QueueReader(Protocol):
    kind: str

    def queues(self) -> list[str]: ...

    def depths(self, queues: Sequence[str]) -> list[QueueDepth]: ...

    def close(self) -> None: ...


class RedisReader:
    kind = "redis"

    def __init__(self, url: str, key_prefix: str = "") -> None:
        import redis  # the `redis` extra

        self.client = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)
        self.prefix = key_prefix

    def _keys(self, queue: str) -> list[str]:
        base = self.prefix + queue
        return [base] + [f"{base}{KOMBU_SEP}{step}" for step in PRIORITY_STEPS if step]

    def queues(self) -> list[str]:
        found: set[str] = set()
        for key in self.client.scan_iter(match=f"{self.prefix}{BINDING_PREFIX}*", count=500):
            for member in cast("set[Any]", self.client.smembers(key)):
                text = member.decode() if isinstance(member, bytes) else str(member)
                found.add(text.split(KOMBU_SEP)[-1])  # routing_key, pattern, queue
        return sorted(q for q in found if q)

    def depths(self, queues: Sequence[str]) -> list[QueueDepth]:
        pipe = self.client.pipeline(transaction=False)
        for queue in queues:
            for key in self._keys(queue):
                pipe.llen(key)
        sizes: list[Any] = pipe.execute()
        per = len(PRIORITY_STEPS)
        return [
            QueueDepth(q, sum(int(n) for n in sizes[i * per : (i + 1) * per]))
            for i, q in enumerate(queues)
        ]

    def close(self) -> None:
        self.client.close()


class AmqpReader:
    kind = "rabbitmq"

    def __init__(self, url: str) -> None:
        import amqp  # type: ignore[import-untyped]  # `exporter` extra: py-amqp, kombu's client

        parts = urlsplit(url)
        vhost = unquote(parts.path[1:]) if len(parts.path) > 1 else "/"
        ssl = parts.scheme in ("amqps", "pyamqps")
        default_port = 5671 if ssl else 5672
        self._amqp = amqp
        self._conn = amqp.Connection(
            host=f"{parts.hostname or 'localhost'}:{parts.port or default_port}",
            userid=unquote(parts.username or "guest"),
            password=unquote(parts.password or "guest"),
            virtual_host=vhost,
            ssl=ssl,
            connect_timeout=5,
        )
        self._conn.connect()
        self._channel: Any = None

    def _chan(self) -> Any:
        if self._channel is None or not self._channel.is_open:
            self._channel = self._conn.channel()
        return self._channel

    def queues(self) -> list[str]:
        return [DEFAULT_QUEUE]  # listing queues needs the management API

    def depths(self, queues: Sequence[str]) -> list[QueueDepth]:
        out = []
        for queue in queues:
            try:
                _, waiting, consumers = self._chan().queue_declare(queue, passive=True)
            except self._amqp.exceptions.NotFound:
                self._channel = None  # the broker closed the channel with 404
                out.append(QueueDepth(queue, 0, 0))
                continue
            out.append(QueueDepth(queue, int(waiting), int(consumers)))
        return out

    def close(self) -> None:
        try:
            self._conn.close()
        except Exception:  # closing a dead connection: nothing left to do
            _log.debug("closing the AMQP connection failed", exc_info=True)


REDIS_SCHEMES = ("redis", "rediss", "unix")
AMQP_SCHEMES = ("amqp", "amqps", "pyamqp", "pyamqps")


def check_url(url: str) -> str:
    scheme = urlsplit(url).scheme
    if scheme not in REDIS_SCHEMES + AMQP_SCHEMES:
        raise ConfigError(
            f"unsupported Celery broker URL scheme {scheme!r} in {url!r}; use "
            f"redis://host:6379/0 or amqp://user:password@host:5672/vhost (the broker_url "
            f"of your Celery app)"
        )
    return url


def open_reader(url: str, key_prefix: str = "") -> QueueReader:
    if urlsplit(check_url(url)).scheme in REDIS_SCHEMES:
        return RedisReader(url, key_prefix)
    return AmqpReader(url)


class CeleryQueueCollector(Collector):
    """Reads the queues at scrape time; reconnects after a broker error."""

    def __init__(self, url: str, queues: Iterable[str] = (), key_prefix: str = "") -> None:
        self.url = check_url(url)
        self.fixed = [q for q in queues if q]
        self.key_prefix = key_prefix
        self._reader: QueueReader | None = None
        self._failing = False
        self._lock = threading.Lock()  # an AMQP channel is not shared between scrapes

    def _read(self) -> tuple[str, list[QueueDepth]]:
        with self._lock:
            if self._reader is None:
                self._reader = open_reader(self.url, self.key_prefix)
            reader = self._reader
            queues = self.fixed or reader.queues() or [DEFAULT_QUEUE]
            return reader.kind, reader.depths(queues)

    def describe(self) -> Iterable[GaugeMetricFamily]:
        return []

    def collect(self) -> Iterator[GaugeMetricFamily]:
        started = time.perf_counter()
        up = GaugeMetricFamily(
            "faena_exporter_broker_up", "1 if the last scrape could read the Celery broker"
        )
        try:
            kind, depths = self._read()
        except Exception as exc:  # a scrape must not die with the broker
            self._drop_reader()
            if not self._failing:
                _log.error(
                    "cannot read the Celery broker",
                    extra={
                        "event": "exporter.broker_error",
                        "error_type": type(exc).__name__,
                        "error_message": str(exc),
                    },
                )
            self._failing = True
            up.add_metric([], 0)
            yield up
            return
        self._failing = False
        up.add_metric([], 1)
        yield up
        length = GaugeMetricFamily(
            "celery_queue_length",
            f"Messages waiting in the Celery queue ({kind} broker, read at scrape time)",
            labels=["queue"],
        )
        consumers = GaugeMetricFamily(
            "celery_active_consumer_count",
            "Consumers (Celery workers' channels) attached to the queue (RabbitMQ only)",
            labels=["queue"],
        )
        for d in depths:
            length.add_metric([d.queue], d.waiting)
            if d.consumers is not None:
                consumers.add_metric([d.queue], d.consumers)
        yield length
        if kind == "rabbitmq":
            yield consumers
        took = GaugeMetricFamily(
            "faena_exporter_scrape_duration_seconds", "Time the last scrape spent on the broker"
        )
        took.add_metric([], time.perf_counter() - started)
        yield took

    def _drop_reader(self) -> None:
        with self._lock:
            if self._reader is not None:
                self._reader.close()
                self._reader = None

    def close(self) -> None:
        self._drop_reader()
