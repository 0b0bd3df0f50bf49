"""Schedules: tasks (and any :class:`~faena.schedules.spec.ScheduleTarget`) enqueued on a
cron expression in a time zone or a fixed interval, each tick exactly once across every
process running the scheduler (the store's compare-and-set, ``Broker.fire_schedule``)."""

from faena.schedules.missed import Missed
from faena.schedules.spec import Schedule, ScheduleTarget, TaskTarget
from faena.schedules.triggers import Cron, Every, Trigger

__all__ = ["Cron", "Every", "Missed", "Schedule", "ScheduleTarget", "TaskTarget", "Trigger"]
