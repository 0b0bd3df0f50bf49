"""Lease arithmetic: deadlines and heartbeat cadence."""

from __future__ import annotations

DEFAULT_LEASE_SECONDS = 30.0
MIN_LEASE_SECONDS = 0.5


def check_lease(seconds: float) -> float:
    if seconds < MIN_LEASE_SECONDS:
        raise ValueError(
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
