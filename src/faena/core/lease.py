"""Lease arithmetic: deadlines and heartbeat cadence."""

from __future__ import annotations

from faena.errors import ConfigError

DEFAULT_LEASE_SECONDS = 30.0
MIN_LEASE_SECONDS = 0.5


def check_lease(seconds: float) -> float:
    if seconds < MIN_LEASE_SECONDS:
        raise ConfigError(
            f"lease must be at least {MIN_LEASE_SECONDS} s, got {seconds}; the heartbeat renews "
            f"it every lease/3 s"
        )
    return seconds


def deadline(now: float, lease_seconds: float) -> float:
    return now + lease_seconds


def heartbeat_interval(lease_seconds: float) -> float:
    """Renew at a third of the lease, so two heartbeats can be missed before it expires."""
    return lease_seconds / 3.0


def expired(lease_expires_at: float | None, now: float) -> bool:
    return lease_expires_at is not None and lease_expires_at <= now


#: a worker gives a lease up, unrenewed, at this share of it: before the broker's deadline,
#: so a job it stops (a child it kills) is gone before another worker can be given it
GIVE_UP_AT = 0.9


def overdue(renewed: list[tuple[str, float]], lease_seconds: float, now: float) -> list[str]:
    """The ids whose lease is about to run out: last renewed (the call that renewed it was
    sent at that time) ``GIVE_UP_AT`` of a lease ago or more. The broker's deadline is that
    time plus the whole lease at the earliest."""
    return [key for key, at in renewed if at + lease_seconds * GIVE_UP_AT <= now]


def next_check(renewed: list[tuple[str, float]], lease_seconds: float, now: float) -> float:
    """Seconds until the next lease is overdue (at most a quarter lease, at least 10 ms)."""
    give_up = lease_seconds * GIVE_UP_AT
    soonest = min((at + give_up - now for _key, at in renewed), default=lease_seconds)
    return min(max(soonest, 0.01), lease_seconds / 4)
