"""The rule of the per-minute series (faena.core.stats.ending) over every allowed change of
state: the stores apply it in SQL and Lua, the contract suite holds them to it."""

from __future__ import annotations

from faena.core import stats
from faena.core.states import TERMINAL, TRANSITIONS, JobState


def test_each_allowed_change_of_state_counts_in_one_series_or_none() -> None:
    counted = {
        (old, new, kept): stats.ending(old, new, kept)
        for old, targets in TRANSITIONS.items()
        for new in targets
        for kept in (True, False)
    }
    running = JobState.RUNNING
    for (old, new, kept), series in counted.items():
        if new in TERMINAL:
            assert series == new.value, (old, new)
        elif old is running and new is JobState.FAILED:
            assert series == stats.RETRIED
        elif old is running and new is JobState.QUEUED:
            # a lease that ran out keeps the try (retried); a release gives it back
            assert series == (stats.RETRIED if kept else None)
        else:  # a claim, a retry by hand: nothing ended
            assert series is None, (old, new)
    assert {s for s in counted.values() if s} == set(stats.SERIES)


def test_counters_are_summed_by_minute_and_series_and_forgotten_by_minute() -> None:
    counters: stats.Counters = {}
    for at, queue, name in [(60.0, "a", "dead"), (119.0, "b", "dead"), (120.0, "a", "retried")]:
        stats.count(counters, at, queue, name)
    assert stats.summed((m, n, c) for (m, _, n), c in counters.items()) == {
        (60.0, "dead"): 2,
        (120.0, "retried"): 1,
    }
    assert stats.summed([(60.0, "someday", 3)]) == {}  # a series this faena does not know
    stats.forget(counters, 120.0)
    assert list(counters) == [(120.0, "a", "retried")]
