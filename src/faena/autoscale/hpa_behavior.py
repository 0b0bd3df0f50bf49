"""Normalization of the combined proposal: stabilization, rate limits, min/max (pure).

Two paths, as upstream ``horizontal.go``: the legacy one when ``spec.behavior`` is absent
(max-window on scale-down, ``max(factor * current, minimum)`` scale-up cap) and the
``behavior`` one (min/max stabilization windows, Pods/Percent policies over periods measured
from the autoscaler's own scale events, ``selectPolicy``).

Times are seconds on the injected clock. An entry of age ``a`` is inside a window ``w`` iff
``a < w`` and old/outdated iff ``a >= w`` (upstream stores entries a few nanoseconds before it
reads the clock, so the boundary falls on the old side).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

from faena.autoscale.spec import PolicyType, ScalingRules, SelectPolicy

INT32_MAX = 2**31 - 1
INT32_MIN = -(2**31)

DESIRED_WITHIN_RANGE = "DesiredWithinRange"
SCALE_UP_LIMIT = "ScaleUpLimit"
SCALE_DOWN_LIMIT = "ScaleDownLimit"
TOO_MANY_REPLICAS = "TooManyReplicas"
TOO_FEW_REPLICAS = "TooFewReplicas"


@dataclass(frozen=True)
class Recommendation:
    replicas: int
    timestamp: float


@dataclass(frozen=True)
class ScaleEvent:
    """A rescale made by this autoscaler: ``replica_change`` is absolute (always >= 0)."""

    replica_change: int
    timestamp: float
    outdated: bool = False


def _inside(timestamp: float, now: float, window_s: float) -> bool:
    return now - timestamp < window_s


# --------------------------------------------------------------------------- legacy path


def stabilize_legacy(
    recommendations: Sequence[Recommendation], desired: int, now: float, window_s: float
) -> tuple[int, tuple[Recommendation, ...]]:
    """Max over the recommendations inside the downscale window, then record ``desired``
    (overwriting the last entry that is out of the window, else appending)."""
    stabilized = desired
    old_index: int | None = None
    for i, rec in enumerate(recommendations):
        if not _inside(rec.timestamp, now, window_s):
            old_index = i
        elif rec.replicas > stabilized:
            stabilized = rec.replicas
    history = list(recommendations)
    new = Recommendation(desired, now)
    if old_index is None:
        history.append(new)
    else:
        history[old_index] = new
    return stabilized, tuple(history)


def convert_with_rules(
    *,
    current: int,
    desired: int,
    min_replicas: int,
    max_replicas: int,
    scale_up_limit_factor: float = 2.0,
    scale_up_limit_minimum: float = 4.0,
) -> tuple[int, str]:
    """Legacy clamp: at most ``max(factor * current, minimum)`` per cycle, within min/max."""
    scale_up_limit = int(max(scale_up_limit_factor * current, scale_up_limit_minimum))
    if max_replicas > scale_up_limit:
        max_allowed, reason = scale_up_limit, SCALE_UP_LIMIT
    else:
        max_allowed, reason = max_replicas, TOO_MANY_REPLICAS
    if desired < min_replicas:
        return min_replicas, TOO_FEW_REPLICAS
    if desired > max_allowed:
        return max_allowed, reason
    return desired, DESIRED_WITHIN_RANGE


# ------------------------------------------------------------------------- behavior path


def stabilize_with_behavior(
    recommendations: Sequence[Recommendation],
    *,
    current: int,
    desired: int,
    up_window_s: float,
    down_window_s: float,
    now: float,
) -> tuple[int, tuple[Recommendation, ...]]:
    """Scale up only to the lowest recommendation of the up window, down only to the highest
    of the down window; record ``desired`` over the last entry old for both windows."""
    up_rec = desired
    down_rec = desired
    old_index: int | None = None
    for i, rec in enumerate(recommendations):
        if _inside(rec.timestamp, now, up_window_s):
            up_rec = min(up_rec, rec.replicas)
        if _inside(rec.timestamp, now, down_window_s):
            down_rec = max(down_rec, rec.replicas)
        if not _inside(rec.timestamp, now, up_window_s) and not _inside(
            rec.timestamp, now, down_window_s
        ):
            old_index = i
    result = current
    result = max(result, up_rec)
    result = min(result, down_rec)
    history = list(recommendations)
    new = Recommendation(desired, now)
    if old_index is None:
        history.append(new)
    else:
        history[old_index] = new
    return result, tuple(history)


def replicas_change_in_period(period_s: float, events: Sequence[ScaleEvent], now: float) -> int:
    """Sum of the replica changes of the events younger than ``period_s``."""
    return sum(e.replica_change for e in events if _inside(e.timestamp, now, period_s))


def scale_up_limit(
    current: int,
    up_events: Sequence[ScaleEvent],
    down_events: Sequence[ScaleEvent],
    rules: ScalingRules,
    now: float,
) -> int:
    """Highest replica count the scale-up policies allow now."""
    if rules.select_policy == SelectPolicy.DISABLED:
        return current
    pick_min = rules.select_policy == SelectPolicy.MIN
    result = INT32_MAX if pick_min else INT32_MIN
    for policy in rules.policies:
        added = replicas_change_in_period(policy.period_seconds, up_events, now)
        removed = replicas_change_in_period(policy.period_seconds, down_events, now)
        period_start = current - added + removed
        if policy.type == PolicyType.PODS:
            proposed = period_start + policy.value
        else:
            proposed = math.ceil(period_start * (1 + policy.value / 100))
        result = min(result, proposed) if pick_min else max(result, proposed)
    return result


def scale_down_limit(
    current: int,
    up_events: Sequence[ScaleEvent],
    down_events: Sequence[ScaleEvent],
    rules: ScalingRules,
    now: float,
) -> int:
    """Lowest replica count the scale-down policies allow now."""
    if rules.select_policy == SelectPolicy.DISABLED:
        return current
    pick_max = rules.select_policy == SelectPolicy.MIN  # the smallest change is the largest count
    result = INT32_MIN if pick_max else INT32_MAX
    for policy in rules.policies:
        added = replicas_change_in_period(policy.period_seconds, up_events, now)
        removed = replicas_change_in_period(policy.period_seconds, down_events, now)
        period_start = current - added + removed
        if policy.type == PolicyType.PODS:
            proposed = period_start - policy.value
        else:
            proposed = int(period_start * (1 - policy.value / 100))
        result = max(result, proposed) if pick_max else min(result, proposed)
    return result


def convert_with_behavior_rate(
    *,
    current: int,
    desired: int,
    min_replicas: int,
    max_replicas: int,
    scale_up: ScalingRules,
    scale_down: ScalingRules,
    up_events: Sequence[ScaleEvent],
    down_events: Sequence[ScaleEvent],
    now: float,
) -> tuple[int, str]:
    """Apply the policy limit in the direction of movement, then min/max."""
    if desired > current:
        limit = max(scale_up_limit(current, up_events, down_events, scale_up, now), current)
        if max_replicas > limit:
            max_allowed, reason = limit, SCALE_UP_LIMIT
        else:
            max_allowed, reason = max_replicas, TOO_MANY_REPLICAS
        if desired > max_allowed:
            return max_allowed, reason
    elif desired < current:
        limit = min(scale_down_limit(current, up_events, down_events, scale_down, now), current)
        if min_replicas < limit:
            min_allowed, reason = limit, SCALE_DOWN_LIMIT
        else:
            min_allowed, reason = min_replicas, TOO_FEW_REPLICAS
        if desired < min_allowed:
            return min_allowed, reason
    return desired, DESIRED_WITHIN_RANGE


def store_scale_event(
    events: Sequence[ScaleEvent], rules: ScalingRules, replica_change: int, now: float
) -> tuple[ScaleEvent, ...]:
    """Mark events at least as old as the longest policy period outdated, then store the new
    event over the last outdated one (or append it)."""
    longest = rules.longest_period_seconds
    marked = [
        e if e.outdated or _inside(e.timestamp, now, longest) else replace(e, outdated=True)
        for e in events
    ]
    new = ScaleEvent(abs(replica_change), now)
    old_index = max((i for i, e in enumerate(marked) if e.outdated), default=None)
    if old_index is None:
        marked.append(new)
    else:
        marked[old_index] = new
    return tuple(marked)
