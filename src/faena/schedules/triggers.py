"""When a schedule fires: a cron expression in a time zone, or a fixed interval (pure).

Ticks are POSIX seconds (floats). Every process computes the same ticks from the same
declaration, whatever its start time: cron ticks come from the expression, interval ticks are
``anchor + k * every``. Cron arithmetic is croniter's (pallets-eco: maintained, tz-aware
through ``zoneinfo``; cronsim is not on our package index), with one rule of our own for
the hour a fall-back repeats (see :meth:`Cron.after`).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from faena.errors import ConfigError

if TYPE_CHECKING:
    from croniter import croniter

# croniter (with dateutil) is imported where a cron expression is first read: an app without
# one does not pay its ~25 ms at import (bench/startup.py)

#: cron aliases croniter reads, and what they stand for
ALIASES = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
#: the shortest interval a schedule may have: the scheduler polls about once a second
MIN_EVERY_SECONDS = 1.0
#: how far ahead :meth:`Trigger.longest_gap` looks, and how many ticks it reads at most
#: (croniter takes about 0.4 ms a tick in a zone)
GAP_HORIZON_SECONDS = 400 * 86_400.0
GAP_MAX_TICKS = 1000


class Trigger:
    """The ticks of a schedule: :class:`Cron` or :class:`Every`."""

    def after(self, t: float) -> float:
        """The first tick strictly after ``t``."""
        raise NotImplementedError

    def at_or_before(self, t: float) -> float | None:
        """The last tick at or before ``t`` (``None``: there is none)."""
        raise NotImplementedError

    def describe(self) -> tuple[str, str]:
        """The expression and the time zone, as ``faena schedules`` shows them."""
        raise NotImplementedError

    def ticks(self, start: float, end: float) -> Iterator[float]:
        """The ticks in ``(start, end]``, oldest first."""
        t = self.after(start)
        while t <= end:
            yield t
            t = self.after(t)

    def longest_gap(self, now: float) -> float:
        """The longest time between two ticks over the next ~400 days: what the alert on a
        schedule that stopped firing compares against."""
        return self._gap(now)[0] or GAP_HORIZON_SECONDS

    def _gap(self, now: float) -> tuple[float, bool]:
        """The longest gap among the next GAP_MAX_TICKS ticks within the horizon, and
        whether that cap cut the horizon short."""
        gap, last, seen = 0.0, self.after(now), 0
        for t in self.ticks(last, now + GAP_HORIZON_SECONDS):
            gap, last, seen = max(gap, t - last), t, seen + 1
            if seen >= GAP_MAX_TICKS:
                return gap, True
        return gap, False


@dataclass(frozen=True)
class Cron(Trigger):
    """A five-field cron expression (minute hour day-of-month month day-of-week, or an alias
    such as ``@daily``) read in the time zone ``tz`` (an IANA name; default UTC).

    Daylight saving time, as Debian's cron does it: a wall time the spring-forward skips
    fires at the first instant after the gap (``30 2 * * *`` at 03:00 that day); a wall time
    the fall-back repeats fires once, at its first occurrence, unless the hour field is a
    wildcard (``*`` or ``*/N``): then the schedule follows real time and fires in both
    (``*/30 * * * *`` fires every 30 minutes through the night)."""

    expression: str
    tz: str = "UTC"
    _zone: ZoneInfo = field(init=False, repr=False, compare=False)
    _wild_hour: bool = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        expr = check_cron(self.expression)
        object.__setattr__(self, "_zone", check_tz(self.tz))
        hour = ALIASES.get(expr, expr).split()[1]
        object.__setattr__(self, "_wild_hour", hour == "*" or hour.startswith("*/"))

    def _iter(self, t: float) -> croniter:
        from croniter import croniter

        return croniter(self.expression, datetime.fromtimestamp(t, self._zone))

    def _repeated(self, tick: float) -> bool:
        """Whether ``tick`` is the second occurrence of a wall time (the fall-back hour)."""
        wall = datetime.fromtimestamp(tick, self._zone)
        return wall.replace(fold=0).timestamp() != tick

    def after(self, t: float) -> float:
        it = self._iter(t)
        while True:
            tick = float(it.get_next(float))
            if tick > t and (self._wild_hour or not self._repeated(tick)):
                return tick

    def at_or_before(self, t: float) -> float | None:
        it = self._iter(math.floor(t) + 1.0)  # get_prev is strictly before its start
        while True:
            tick = float(it.get_prev(float))
            if tick <= t and (self._wild_hour or not self._repeated(tick)):
                return tick

    def describe(self) -> tuple[str, str]:
        return self.expression, self.tz

    def longest_gap(self, now: float) -> float:
        """Exact for up to 1000 ticks in ~400 days (a daily cron); a busier one (``* 9-17 *
        * 1-5``) adds the longest gap between the days that have ticks, when some days have
        none (its weekend), read from the same day fields at midnight: an upper bound."""
        gap, cut = self._gap(now)
        if cut:
            fields = ALIASES.get(self.expression, self.expression).split()
            days = Cron(" ".join(["0", "0", *fields[2:]]), self.tz)._gap(now)[0]
            if days > 86_400.0 * 1.5:  # days without ticks (not a DST day of 23 or 25 h)
                gap = max(gap, days)
        return gap or GAP_HORIZON_SECONDS


@dataclass(frozen=True)
class Every(Trigger):
    """A fixed interval of ``seconds`` (>= 1): ticks at ``anchor + k * seconds`` for every
    whole ``k``, the same in every process (``anchor`` defaults to the Unix epoch, so an
    hourly interval ticks on the hour, UTC)."""

    seconds: float
    anchor: float = 0.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "seconds", check_every(self.seconds))
        if not math.isfinite(self.anchor):
            raise ConfigError(f"schedule anchor {self.anchor!r} must be a finite POSIX time")

    def after(self, t: float) -> float:
        k = math.floor((t - self.anchor) / self.seconds) + 1
        tick = self.anchor + k * self.seconds
        return tick if tick > t else self.anchor + (k + 1) * self.seconds

    def at_or_before(self, t: float) -> float | None:
        k = math.floor((t - self.anchor) / self.seconds)
        tick = self.anchor + k * self.seconds
        return tick if tick <= t else self.anchor + (k - 1) * self.seconds

    def describe(self) -> tuple[str, str]:
        return f"every {_seconds_text(self.seconds)}", "-"

    def longest_gap(self, now: float) -> float:
        return self.seconds


def check_cron(expression: object) -> str:
    """``expression`` if croniter reads it as five fields (or an alias); else a ConfigError
    naming it and the fix."""
    if not isinstance(expression, str) or not expression.strip():
        raise ConfigError(
            f"cron expression {expression!r} is not valid: give five fields as text, "
            f"minute hour day-of-month month day-of-week (e.g. '0 2 * * *'), or an alias "
            f"({', '.join(ALIASES)})"
        )
    fields = ALIASES.get(expression.strip().lower(), expression).split()
    if len(fields) != 5:
        raise ConfigError(
            f"cron expression {expression!r} has {len(fields)} field(s); give five, minute "
            f"hour day-of-month month day-of-week (e.g. '0 2 * * *' for 02:00 every day), or "
            f"an alias ({', '.join(ALIASES)}); seconds and years are not supported"
        )
    from croniter import croniter
    from croniter.croniter import CroniterError

    try:
        croniter(expression, datetime(2000, 1, 1, tzinfo=UTC)).get_next(float)
    except (CroniterError, ValueError, KeyError) as exc:
        raise ConfigError(
            f"cron expression {expression!r} is not valid ({exc}); fields are minute 0-59, "
            f"hour 0-23, day-of-month 1-31, month 1-12, day-of-week 0-6 (e.g. '*/15 8-18 * "
            f"* 1-5')"
        ) from None
    return expression


def check_tz(tz: object) -> ZoneInfo:
    if not isinstance(tz, str) or not tz:
        raise ConfigError(f"time zone {tz!r} is not valid: give an IANA name such as 'UTC'")
    try:
        return ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(
            f"time zone {tz!r} is not known: give an IANA name such as 'Europe/Madrid' or "
            f"'UTC' (the tzdata package provides them where the system has none)"
        ) from None


def check_every(every: object) -> float:
    if isinstance(every, timedelta):
        seconds = every.total_seconds()
    elif isinstance(every, int | float) and not isinstance(every, bool):
        seconds = float(every)
    else:
        raise ConfigError(
            f"schedule interval {every!r} is not valid: give a datetime.timedelta or a number "
            f"of seconds (e.g. every=timedelta(minutes=5))"
        )
    if not (math.isfinite(seconds) and seconds >= MIN_EVERY_SECONDS):
        raise ConfigError(
            f"schedule interval {every!r} is not valid: it must be at least "
            f"{MIN_EVERY_SECONDS:g} second and finite (the scheduler polls about once a second)"
        )
    return seconds


def _seconds_text(seconds: float) -> str:
    for unit, size in (("d", 86_400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"
