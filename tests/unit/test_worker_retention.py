"""Retention on a schedule: the heartbeat's beat prunes finished jobs past ``App(retention)``
at the first beat and then at most once per interval (with jitter); failures logged once."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest

import faena
from faena.brokers.memory import MemoryBroker
from faena.core.clock import ManualClock
from faena.core.job import NewJob, Outcome
from faena.core.retention import (
    DEFAULT_RETENTION_SECONDS,
    JITTER,
    PRUNE_BATCH,
    PRUNE_INTERVAL_SECONDS,
    PruneSchedule,
    check_retention,
)
from faena.core.states import JobState
from faena.errors import ConfigError
from faena.worker.registration import Registration
from faena.worker.retention import Retention

DAY = 86_400.0


def finished(broker: MemoryBroker, n: int) -> None:
    for lo in range(0, n, 100):  # within the default pool's slots
        broker.enqueue([NewJob(task="t", queue="q") for _ in range(min(100, n - lo))])
        jobs = broker.claim("w0", ["q"], 100, 30.0).jobs
        done = [Outcome(j.id, j.attempt, JobState.SUCCEEDED, result_json="1") for j in jobs]
        broker.finish(done)


def test_workers_prune_every_ten_minutes_by_default() -> None:
    assert PRUNE_INTERVAL_SECONDS == 600.0


def test_the_schedule_is_due_first_then_once_per_interval_with_jitter() -> None:
    schedule = PruneSchedule(interval=600.0, rand=lambda: 1.0)  # the longest spread
    assert schedule.due(0.0) is True
    assert schedule.due(1.0) is False
    assert schedule.due(600.0 * (1 + JITTER) - 1) is False
    assert schedule.due(600.0 * (1 + JITTER)) is True
    short = PruneSchedule(interval=600.0, rand=lambda: 0.0)
    assert short.due(0.0) and short.due(600.0 * (1 - JITTER))


def test_a_beat_prunes_old_finished_jobs_and_keeps_young_and_pending(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = ManualClock()
    broker = MemoryBroker(clock=clock)
    finished(broker, 2)
    clock.advance(8 * DAY)
    finished(broker, 1)  # young
    [pending] = broker.enqueue([NewJob(task="t", queue="q")])
    schedule = PruneSchedule(interval=30 * DAY, rand=lambda: 0.5)
    retention = Retention(broker, 7 * DAY, clock, "w1", schedule)
    reg = Registration(broker, "w1", ["q"], 1, 30.0, clock, lambda: False, retention=retention)
    with caplog.at_level(logging.INFO, logger="faena.worker"):
        reg.beat()
    assert len(broker.list_jobs()) == 2
    assert broker.get(pending.id) is not None
    [record] = [r for r in caplog.records if getattr(r, "event", None) == "worker.retention_pruned"]
    assert record.count == 2  # type: ignore[attr-defined]

    clock.advance(8 * DAY)  # the young one is old now, but no prune is due on the clock
    reg.beat()
    assert len(broker.list_jobs()) == 2
    clock.advance(30 * DAY)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="faena.worker"):
        reg.beat()
        reg.beat()  # nothing due, nothing logged
    assert [j.id for j in broker.list_jobs()] == [pending.id]
    pruned = [r for r in caplog.records if getattr(r, "event", None) == "worker.retention_pruned"]
    assert len(pruned) == 1


class Refusing(MemoryBroker):
    def prune(self, older_than: float, limit: int | None = None) -> int:
        raise RuntimeError("store down")


def test_a_failing_prune_is_logged_once_and_never_raises(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = ManualClock()
    retention = Retention(Refusing(clock=clock), DAY, clock, "w1", PruneSchedule(interval=1.0))
    with caplog.at_level(logging.WARNING, logger="faena.worker"):
        for _ in range(3):
            assert retention.tick() == 0
            clock.advance(2.0)
    events = [getattr(r, "event", None) for r in caplog.records]
    assert events == ["worker.retention_failed"]


def test_retention_is_a_timedelta_or_seconds_with_a_week_by_default() -> None:
    assert faena.App("memory://").retention_seconds == DEFAULT_RETENTION_SECONDS == 7 * DAY
    assert faena.App("memory://", retention=timedelta(hours=1)).retention_seconds == 3600.0
    assert faena.App("memory://", retention=90).retention_seconds == 90.0
    assert faena.App("memory://", retention=None).retention_seconds is None


@pytest.mark.parametrize("bad", [0, -5, timedelta(0), timedelta(days=-1), float("nan")])
def test_a_retention_that_is_not_positive_is_refused(bad: object) -> None:
    with pytest.raises(ConfigError, match=r"retention .* must be a finite time > 0.*None"):
        check_retention(bad)


@pytest.mark.parametrize("bad", ["7d", True, [7]])
def test_a_retention_of_the_wrong_type_is_refused(bad: object) -> None:
    with pytest.raises(ConfigError, match=r"retention .*timedelta or a number of seconds"):
        faena.App("memory://", retention=bad)  # type: ignore[arg-type]


class Counting(MemoryBroker):
    prunes = 0

    def prune(self, older_than: float, limit: int | None = None) -> int:
        self.prunes += 1
        return super().prune(older_than, limit)


def test_a_full_batch_makes_the_next_beat_prune_again() -> None:
    clock = ManualClock()
    broker = Counting(clock=clock)
    finished(broker, PRUNE_BATCH + 5)
    clock.advance(2 * DAY)
    retention = Retention(broker, DAY, clock, "w1", PruneSchedule(rand=lambda: 0.5))
    assert retention.tick() == PRUNE_BATCH
    clock.advance(10.0)  # one heartbeat later, well inside the interval
    assert retention.tick() == 5
    clock.advance(10.0)  # that batch was not full: the interval rules again
    assert retention.tick() == 0
    assert broker.prunes == 2
