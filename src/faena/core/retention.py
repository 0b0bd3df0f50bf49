"""How long finished jobs are kept (``App(retention=...)``) and when a worker prunes them.

Pure: the setting's check and the schedule; the pruning itself is the worker's
(:mod:`faena.worker.retention`), from its heartbeat thread.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import timedelta

from faena.errors import ConfigError

#: finished (succeeded, dead, cancelled) jobs are kept this long by default: a week
DEFAULT_RETENTION_SECONDS = 7 * 86_400.0
#: each worker prunes at most this often (give or take the jitter)
PRUNE_INTERVAL_SECONDS = 600.0
#: how far one interval may be from PRUNE_INTERVAL_SECONDS, as a fraction of it, so the
#: workers of a fleet started together do not all prune at the same moments
JITTER = 0.2


def check_retention(value: object) -> float | None:
    """``retention`` as seconds (``None``: never prune); a positive number or timedelta."""
    if value is None:
        return None
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    else:
        raise ConfigError(
            f"retention {value!r} is not valid: give a datetime.timedelta or a number of "
            f"seconds (e.g. retention=timedelta(days=7)), or None to keep finished jobs forever"
        )
    if not seconds > 0 or seconds == float("inf"):
        raise ConfigError(
            f"retention {value!r} is not valid: it must be a finite time > 0 (finished jobs "
            f"are deleted that long after they end); use None to keep them forever"
        )
    return seconds


#: the most finished jobs one prune by a worker deletes; a full batch makes the next beat
#: prune again, so a backlog is worked off in short steps that never hold up the heartbeat
PRUNE_BATCH = 1000


def check_prune_limit(limit: object) -> int | None:
    """``prune``'s ``limit``: ``None`` (every job due) or an integer >= 1."""
    if limit is None:
        return None
    if type(limit) is not int or limit < 1:
        raise ConfigError(
            f"prune limit {limit!r} is not valid: give an integer >= 1, or None to delete "
            f"every finished job due"
        )
    return limit


class PruneSchedule:
    """Whether a prune is due: at the first look, then every interval (with jitter)."""

    def __init__(
        self,
        interval: float = PRUNE_INTERVAL_SECONDS,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self._interval = interval
        self._rand = rand
        self._next: float | None = None

    def again(self) -> None:
        """Make the next look due at once (a prune that was cut short by its limit)."""
        self._next = None

    def due(self, now: float) -> bool:
        """``True`` (and the next time set) if a prune is due at ``now``."""
        if self._next is not None and now < self._next:
            return False
        spread = 1.0 + JITTER * (2.0 * self._rand() - 1.0)
        self._next = now + self._interval * spread
        return True
