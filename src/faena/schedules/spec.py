"""A declared schedule: its name, its trigger, what it fires and its policy for missed ticks.

What a tick fires is a :class:`ScheduleTarget`: anything that turns a tick into the jobs to
enqueue for it, all of them written in the same atomic step as the tick
(``Broker.fire_schedule``). :class:`TaskTarget` is one job of a task; a pipeline run (the
jobs of its steps) can be another.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol
from zoneinfo import ZoneInfo

from faena.core.job import NewJob
from faena.core.pools import check_name
from faena.errors import ConfigError
from faena.schedules.missed import Missed, check_missed
from faena.schedules.triggers import Cron, Every, Trigger

if TYPE_CHECKING:
    from faena.task import Task


class ScheduleTarget(Protocol):
    """What a schedule fires: the new jobs of one tick (they are enqueued atomically with
    the record of the tick, so a tick creates them all once or none of them)."""

    def jobs_for(self, schedule: str, tick: float) -> Sequence[NewJob]:
        """The jobs for ``tick`` of the schedule named ``schedule``: new ids each call."""
        ...

    def describe(self) -> str:
        """What it fires, as ``faena schedules`` shows it (``task etl.load_day``)."""
        ...


def tick_key(schedule: str, tick: float) -> str:
    """The idempotency key of a tick's job: ``schedule:NAME:TICK`` (the tick as POSIX
    seconds); a second guard behind the store's record of the last tick."""
    return f"schedule:{schedule}:{tick:.6f}".rstrip("0").rstrip(".")


@dataclass(frozen=True)
class TaskTarget:
    """One job of ``task`` per tick, with ``args``, ``kwargs`` and enqueue ``options``;
    ``tick_kwarg``: also pass the tick's time (ISO 8601 in ``tz``) as this keyword."""

    task: Task[Any, Any]
    args: tuple[Any, ...] = ()
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    options: Mapping[str, Any] = field(default_factory=dict)
    tick_kwarg: str | None = None
    tz: str = "UTC"

    def __post_init__(self) -> None:
        for name in ("idempotency_key", "run_at", "delay"):
            if name in self.options:
                raise ConfigError(
                    f"schedule option {name!r} cannot be set: the schedule sets each tick's "
                    f"idempotency key and runs it at once; drop it"
                )
        if self.tick_kwarg is not None and self.tick_kwarg in self.kwargs:
            raise ConfigError(
                f"tick_kwarg={self.tick_kwarg!r} is also in kwargs; the schedule passes the "
                f"tick under that name, so drop it from kwargs or choose another name"
            )

    def jobs_for(self, schedule: str, tick: float) -> Sequence[NewJob]:
        kwargs = dict(self.kwargs)
        if self.tick_kwarg is not None:
            kwargs[self.tick_kwarg] = datetime.fromtimestamp(tick, ZoneInfo(self.tz)).isoformat()
        options = {**self.options, "idempotency_key": tick_key(schedule, tick)}
        return [self.task.app.new_job(self.task.name, self.args, kwargs, **options)]

    def describe(self) -> str:
        return f"task {self.task.name}"


@dataclass(frozen=True)
class Schedule:
    """A schedule as declared (``App.schedule``): checked when it is made."""

    name: str
    trigger: Trigger
    target: ScheduleTarget
    missed: Missed = Missed.SKIP
    catch_up_max: int = 1

    def __post_init__(self) -> None:
        check_name("schedule", self.name)
        policy, most = check_missed(self.missed, self.catch_up_max)
        object.__setattr__(self, "missed", policy)
        object.__setattr__(self, "catch_up_max", most)


def make_trigger(
    name: str,
    cron: str | None,
    tz: str | None,
    every: object,
    anchor: float | None,
) -> Trigger:
    """The trigger ``App.schedule`` was given: ``cron`` (with ``tz``) or ``every``."""
    if (cron is None) == (every is None):
        raise ConfigError(
            f"schedule {name!r}: give exactly one of cron='...' (e.g. cron='0 2 * * *', "
            f"tz='Europe/Madrid') or every=... (a timedelta or seconds)"
        )
    if cron is not None:
        if anchor is not None:
            raise ConfigError(f"schedule {name!r}: anchor= goes with every=, not with cron=")
        try:
            return Cron(cron, tz or "UTC")
        except ConfigError as exc:
            raise ConfigError(f"schedule {name!r}: {exc}") from None
    if tz is not None:
        raise ConfigError(
            f"schedule {name!r}: tz= goes with cron= (an interval is the same in every zone); "
            f"drop it, or anchor the interval with anchor=POSIX seconds"
        )
    try:
        return Every(every, 0.0 if anchor is None else float(anchor))  # type: ignore[arg-type]
    except ConfigError as exc:
        raise ConfigError(f"schedule {name!r}: {exc}") from None


def check_unique(schedules: Mapping[str, Schedule], name: str) -> None:
    if name in schedules:
        raise ConfigError(
            f"schedule name {name!r} is declared twice; each schedule needs a name of its own "
            f"(the store keeps its last tick under it)"
        )
