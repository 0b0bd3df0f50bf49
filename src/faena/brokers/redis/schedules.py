"""The Redis broker's schedule ticks: ``lua/fire_schedule.lua`` records the tick (a
compare-and-set in ``{p}:schedules``, name -> ``"tick fired_at"``) and then runs the body of
``lua/enqueue.lua``, in one Redis function: atomic, as every Redis function is."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from faena.brokers.protocol import ScheduleState
from faena.brokers.redis.codec import enqueue_args, num
from faena.brokers.redis.connection import RedisURL, call
from faena.brokers.schedules import check_fire
from faena.core import lifecycle
from faena.core.clock import Clock
from faena.core.job import Job, NewJob


class RedisSchedules:
    _target: RedisURL
    _client: Any
    _clock: Clock
    _tag: str
    #: the broker's: run a function; decode an enqueue reply
    _call: Callable[..., Any]
    _enqueued: Callable[[Any, list[Job]], list[Job]]

    def fire_schedule(self, schedule: str, tick: float, jobs: Sequence[NewJob]) -> list[Job] | None:
        tick = check_fire(schedule, tick, jobs)
        now = self._clock.now()
        now_text = num(now)
        pools = sorted({new.pool for new in jobs})
        head = [now_text, schedule, num(tick), "1" if jobs else "0", str(len(pools)), *pools]
        rest = enqueue_args(jobs, now_text) if jobs else []
        created: list[Job] = []

        def build() -> None:
            created.extend(lifecycle.create(new, now) for new in jobs)

        reply = self._call("fire_schedule", [*head, *rest], build)
        if reply == "stale":
            return None
        if reply == "armed":
            return []
        return self._enqueued(reply, created)

    def schedule_states(self) -> list[ScheduleState]:
        stored = call(self._target, lambda: self._client.hgetall(f"{self._tag}:schedules"))
        out = []
        for name in sorted(stored):
            tick, fired_at = stored[name].split(" ", 1)
            out.append(ScheduleState(name, float(tick), float(fired_at)))
        return out
