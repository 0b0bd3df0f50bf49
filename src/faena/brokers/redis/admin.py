"""The Redis broker's queue pauses, worker registry and autoscalers, in hashes of the prefix.

Plain commands: ``{p}:paused`` (queue -> paused_at; the claim and ``next`` functions read
it), ``{p}:workers`` (worker id -> ``"seen_at report-json"``) and ``{p}:autoscalers``
(name -> ``"updated_at report-json"``)."""

from __future__ import annotations

from typing import Any

from faena.brokers import autoscalers, registry
from faena.brokers.protocol import (
    AutoscalerRecord,
    AutoscalerReport,
    WorkerRecord,
    WorkerReport,
)
from faena.brokers.redis.codec import num
from faena.brokers.redis.connection import RedisURL, call
from faena.core import checks
from faena.core.clock import Clock


class RedisRegistry:
    _target: RedisURL
    _client: Any
    _clock: Clock
    _tag: str

    def _key(self, name: str) -> str:
        return f"{self._tag}:{name}"

    def pause_queue(self, queue: str) -> bool:
        checks.check_text("queue", queue)
        key, now = self._key("paused"), num(self._clock.now())
        return bool(call(self._target, lambda: self._client.hsetnx(key, queue, now)))

    def resume_queue(self, queue: str) -> bool:
        checks.check_text("queue", queue)

        def resume() -> bool:
            pipe = self._client.pipeline(transaction=True)
            pipe.hdel(self._key("paused"), queue)
            pipe.publish(self._key("wake"), queue)
            removed, _woken = pipe.execute()
            return bool(removed)

        return call(self._target, resume)

    def paused_queues(self) -> frozenset[str]:
        names = call(self._target, lambda: self._client.hkeys(self._key("paused")))
        return frozenset(names)

    def report_worker(self, report: WorkerReport) -> None:
        registry.check_report(report)
        value = f"{num(self._clock.now())} {registry.encode(report)}"
        call(self._target, lambda: self._client.hset(self._key("workers"), report.id, value))

    def _workers(self) -> dict[str, WorkerRecord]:
        flat = call(self._target, lambda: self._client.hgetall(self._key("workers")))
        out = {}
        for worker, value in flat.items():
            seen_at, _, text = value.partition(" ")
            out[worker] = registry.decode(text, float(seen_at))
        return out

    def list_workers(self) -> list[WorkerRecord]:
        found = self._workers()
        return [found[k] for k in sorted(found)]

    def prune_workers(self, older_than: float) -> int:
        # a worker that reports between the read and the delete loses that report only: its
        # next heartbeat registers it again
        doomed = [k for k, r in self._workers().items() if r.seen_at < older_than]
        if not doomed:
            return 0
        return int(call(self._target, lambda: self._client.hdel(self._key("workers"), *doomed)))

    def report_autoscaler(self, report: AutoscalerReport) -> None:
        autoscalers.check_report(report)
        value = f"{num(self._clock.now())} {autoscalers.encode(report)}"
        call(
            self._target,
            lambda: self._client.hset(self._key("autoscalers"), report.name, value),
        )

    def _autoscalers(self) -> dict[str, AutoscalerRecord]:
        flat = call(self._target, lambda: self._client.hgetall(self._key("autoscalers")))
        out = {}
        for name, value in flat.items():
            updated_at, _, text = value.partition(" ")
            out[name] = autoscalers.decode(text, float(updated_at))
        return out

    def list_autoscalers(self) -> list[AutoscalerRecord]:
        found = self._autoscalers()
        return [found[k] for k in sorted(found)]

    def prune_autoscalers(self, older_than: float) -> int:
        # a report between the read and the delete is lost; the next sync writes it again
        doomed = [k for k, r in self._autoscalers().items() if r.updated_at < older_than]
        if not doomed:
            return 0
        key = self._key("autoscalers")
        return int(call(self._target, lambda: self._client.hdel(key, *doomed)))
