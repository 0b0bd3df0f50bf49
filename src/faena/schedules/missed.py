"""Which ticks to fire now, from the last fired one and the policy for missed ticks (pure).

A tick is due once the clock has reached it. When several are due at once (the scheduler
was down, or every process was), the schedule's ``missed`` policy says what happens:

* ``skip`` (the default): fire only the latest due tick; the older ones are skipped.
* ``catch_up``: fire the due ticks oldest first, at most ``catch_up_max`` of them (the
  latest ones); older ones beyond that are skipped.

A schedule the store has never seen fires nothing for the past: it is armed at the latest
tick at or before now, and its first fire is the next tick.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from faena.errors import ConfigError
from faena.schedules.triggers import Trigger

#: how many skipped ticks a plan counts one by one; beyond it the count says "at least"
COUNT_SKIPPED_UP_TO = 1000
#: the largest catch_up_max: each caught-up tick is its own store write
MAX_CATCH_UP = 1000


class Missed(StrEnum):
    SKIP = "skip"
    CATCH_UP = "catch_up"


@dataclass(frozen=True, slots=True)
class Plan:
    """What one round does for one schedule."""

    #: ticks to fire, oldest first (each its own compare-and-set in the store)
    fire: tuple[float, ...] = ()
    #: the tick to arm the schedule at (first sight: record it, enqueue nothing)
    arm: float | None = None
    #: due ticks not fired, and the oldest and newest of them
    skipped: int = 0
    skipped_first: float | None = None
    skipped_last: float | None = None
    #: ``skipped`` is a lower bound (more than COUNT_SKIPPED_UP_TO were missed)
    skipped_at_least: bool = False


def check_missed(missed: object, catch_up_max: object) -> tuple[Missed, int]:
    try:
        policy = Missed(str(missed))
    except ValueError:
        raise ConfigError(
            f"missed={missed!r} is not a policy: give 'skip' (fire only the latest due tick "
            f"after an outage) or 'catch_up' (fire the missed ticks, at most catch_up_max)"
        ) from None
    if (
        not isinstance(catch_up_max, int)
        or isinstance(catch_up_max, bool)
        or not 1 <= catch_up_max <= MAX_CATCH_UP
    ):
        raise ConfigError(
            f"catch_up_max={catch_up_max!r} is not valid: give a whole number from 1 to "
            f"{MAX_CATCH_UP} (how many missed ticks missed='catch_up' fires after an outage)"
        )
    if policy is Missed.SKIP and catch_up_max != 1:
        raise ConfigError(
            f"catch_up_max={catch_up_max} is only read with missed='catch_up'; drop it or "
            f"give missed='catch_up'"
        )
    return policy, catch_up_max


def plan(
    trigger: Trigger, last: float | None, now: float, policy: Missed, catch_up_max: int = 1
) -> Plan:
    """The ticks due in ``(last, now]`` under ``policy``; ``last`` ``None``: never armed."""
    latest = trigger.at_or_before(now)
    if last is None:
        return Plan(arm=now if latest is None else latest)
    if latest is None or latest <= last:
        return Plan()
    keep = 1 if policy is Missed.SKIP else catch_up_max
    fire: list[float] = [latest]
    while len(fire) < keep:
        before = trigger.at_or_before(_just_before(fire[-1]))
        if before is None or before <= last:
            break
        fire.append(before)
    fire.reverse()
    first_due = trigger.after(last)
    if first_due >= fire[0]:
        return Plan(fire=tuple(fire))
    skipped, at_least, newest = 0, False, first_due
    for t in trigger.ticks(_just_before(first_due), _just_before(fire[0])):
        skipped, newest = skipped + 1, t
        if skipped >= COUNT_SKIPPED_UP_TO:
            at_least = True
            newest = trigger.at_or_before(_just_before(fire[0])) or t
            break
    return Plan(
        fire=tuple(fire),
        skipped=skipped,
        skipped_first=first_due,
        skipped_last=newest,
        skipped_at_least=at_least,
    )


def _just_before(t: float) -> float:
    """A time before ``t`` and after any tick before it (ticks are >= 1 s apart)."""
    return t - 0.5
