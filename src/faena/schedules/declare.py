"""``App.schedule``: a schedule declared in code, checked in full before it is kept.

Everything a tick would do is tried once at declaration (the trigger, the policy, the task,
its arguments against its signature, the payload and the options), so a mistake is an
error at import time naming the value and the fix, never a tick that fails at 02:00.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol, Unpack

from faena.core.job import NewJob
from faena.core.options import EnqueueOptions
from faena.errors import ConfigError
from faena.schedules.spec import Schedule, ScheduleTarget, TaskTarget, check_unique, make_trigger

if TYPE_CHECKING:
    from faena.task import Task


class Declares(Protocol):
    """What of the app a declaration reads (``faena.App``)."""

    schedules: dict[str, Schedule]

    def get_task(self, name: str) -> Task[Any, Any]: ...

    def check_call(self, name: str, args: Sequence[Any], kwargs: Mapping[str, Any]) -> None: ...

    def new_job(
        self,
        task_name: str,
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        **options: Unpack[EnqueueOptions],
    ) -> NewJob: ...


def declare(
    app: Declares,
    name: str,
    *,
    task: Task[Any, Any] | str | None,
    target: ScheduleTarget | None,
    cron: str | None,
    tz: str | None,
    every: object,
    anchor: float | None,
    args: Sequence[Any],
    kwargs: Mapping[str, Any] | None,
    tick_kwarg: str | None,
    missed: str,
    catch_up_max: int,
    options: Mapping[str, Any],
) -> Schedule:
    check_unique(app.schedules, name)
    trigger = make_trigger(name, cron, tz, every, anchor)
    if (task is None) == (target is None):
        raise ConfigError(
            f"schedule {name!r}: give exactly one of task=... (a registered task or its name) "
            f"or target=... (a ScheduleTarget, such as a pipeline)"
        )
    if task is not None:
        found = app.get_task(task) if isinstance(task, str) else task
        call_kwargs = dict(kwargs or {})
        if tick_kwarg is not None:
            call_kwargs.setdefault(tick_kwarg, "2000-01-01T00:00:00+00:00")
        app.check_call(found.name, tuple(args), call_kwargs)
        target = TaskTarget(
            found, tuple(args), dict(kwargs or {}), dict(options), tick_kwarg, tz or "UTC"
        )
    elif args or kwargs or options or tick_kwarg is not None:
        raise ConfigError(
            f"schedule {name!r}: args, kwargs, tick_kwarg and enqueue options go with task=; "
            f"a target= builds its own jobs"
        )
    assert target is not None
    schedule = Schedule(name, trigger, target, missed, catch_up_max)  # type: ignore[arg-type]
    target.jobs_for(name, trigger.after(0.0))  # the payload and options, checked now
    app.schedules[name] = schedule
    return schedule
