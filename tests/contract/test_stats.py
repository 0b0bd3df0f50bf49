"""``job_stats`` on every backend, with the injected clock: attempt endings per minute
(succeeded, retried, dead, cancelled: counted where they happen, fenced writes not), run and
wait time percentiles over a window of whole minutes, of one queue or all, and the counters
pruned with the jobs."""

from __future__ import annotations

from typing import Any

import pytest

from faena.brokers.protocol import Broker
from faena.core import stats
from faena.core.clock import ManualClock
from faena.core.job import ErrorInfo, Lease, NewJob, Outcome
from faena.core.states import JobState
from faena.errors import ConfigError

LEASE = 300.0


def _run_one(
    broker: Broker, clock: ManualClock, queue: str, wait: float, run: float, state: JobState
) -> None:
    """A job that waits ``wait`` seconds, runs ``run`` seconds and ends in ``state``."""
    broker.enqueue([NewJob(task="t", queue=queue, max_attempts=1)])
    clock.advance(wait)
    (job,) = broker.claim("w", [queue], 1, LEASE).jobs
    clock.advance(run)
    error = ErrorInfo("E", "boom") if state is JobState.DEAD else None
    result = "1" if state is JobState.SUCCEEDED else None
    assert broker.finish([Outcome(job.id, job.attempt, state, result_json=result, error=error)])


def _table(got: stats.JobStats) -> list[tuple[int, int, int, int]]:
    return [(m.succeeded, m.retried, m.dead, m.cancelled) for m in got.minutes]


def _totals(broker: Broker, minutes: int = 5, queue: str | None = None) -> tuple[int, ...]:
    rows = _table(broker.job_stats(minutes=minutes, queue=queue))
    return tuple(sum(r[i] for r in rows) for i in range(4))


def test_counts_per_minute_and_percentiles_of_the_window(
    broker: Broker, clock: ManualClock
) -> None:
    t0 = clock.now()  # a whole minute (1_800_000_000 is 30_000_000 minutes)
    # long before the window: never counted
    _run_one(broker, clock, "qa", 1.0, 1.0, JobState.SUCCEEDED)
    clock.set(t0 + 600.0)
    first = t0 + 600.0
    runs, waits = [], []
    for i in range(5):  # minute 0 of the window: five successes, waits and runs known
        _run_one(broker, clock, "qa", float(i), 2.0 * i + 1, JobState.SUCCEEDED)
        runs.append(2.0 * i + 1)
        waits.append(float(i))
    clock.set(first + 60.0)
    _run_one(broker, clock, "qb", 3.0, 4.0, JobState.DEAD)  # minute 1: one dead, in qb
    runs.append(4.0)
    waits.append(3.0)
    clock.set(first + 125.0)
    doomed = broker.enqueue([NewJob(task="t", queue="qa")])[0]
    broker.cancel(doomed.id)  # minute 2: one cancelled (it never ran)
    clock.set(first + 3 * 60.0 + 10)  # now: within minute 3

    got = broker.job_stats(minutes=4)
    assert got.since == first and got.until == clock.now() and got.queue is None
    assert [m.minute for m in got.minutes] == [first + 60.0 * n for n in range(4)]
    assert _table(got) == [(5, 0, 0, 0), (0, 0, 1, 0), (0, 0, 0, 1), (0, 0, 0, 0)]
    _same(got.run_time, stats.percentiles(runs))
    _same(got.wait_time, stats.percentiles(waits))
    assert got.run_time.count == 6 and got.sample_limit == stats.SAMPLE_LIMIT

    of_qb = broker.job_stats(minutes=4, queue="qb")
    assert _table(of_qb)[:2] == [(0, 0, 0, 0), (0, 0, 1, 0)]
    _same(of_qb.run_time, stats.percentiles([4.0]))
    assert broker.job_stats(minutes=4, queue="nowhere").run_time.count == 0

    last_minute = broker.job_stats(minutes=1)
    assert len(last_minute.minutes) == 1 and last_minute.run_time.p50 is None


def test_every_attempt_ending_is_counted_in_its_minute(broker: Broker, clock: ManualClock) -> None:
    """A job failing twice then succeeding counts two retried and one succeeded, each in the
    minute its attempt ended; a dead end, a cancelled running job and a cancelled waiting
    one count once each. The job's state now does not matter: it is events."""
    t0 = clock.now()
    job = broker.enqueue([NewJob(task="t", queue="qa", max_attempts=3)])[0]
    for n in range(2):  # minutes 0 and 1: a failure each, retried
        clock.set(t0 + 60.0 * n + 5)
        (got,) = broker.claim("w", ["qa"], 1, LEASE).jobs
        error = ErrorInfo("E", f"boom {n}")
        outcome = Outcome(got.id, got.attempt, JobState.FAILED, error=error, retry_at=clock.now())
        assert broker.finish([outcome]) == [True]
    clock.set(t0 + 120.0 + 5)  # minute 2: it succeeds
    (got,) = broker.claim("w", ["qa"], 1, LEASE).jobs
    assert got.id == job.id and got.attempt == 3
    assert broker.finish([Outcome(got.id, got.attempt, JobState.SUCCEEDED, result_json="1")])
    clock.set(t0 + 180.0 + 5)  # minute 3: a dead job, a cancelled running and waiting one
    _run_one(broker, clock, "qa", 0.0, 1.0, JobState.DEAD)
    runner = broker.enqueue([NewJob(task="t", queue="qa")])[0]
    (held,) = broker.claim("w", ["qa"], 1, LEASE).jobs
    broker.cancel(runner.id)  # only flagged: nothing ended yet
    assert _totals(broker) == (1, 2, 1, 0)
    assert broker.finish([Outcome(held.id, held.attempt, JobState.CANCELLED)]) == [True]
    broker.cancel(broker.enqueue([NewJob(task="t", queue="qa")])[0].id)
    clock.set(t0 + 240.0 + 1)
    got_stats = broker.job_stats(minutes=5)
    assert got_stats.minutes[0].minute == t0
    assert _table(got_stats) == [
        (0, 1, 0, 0),
        (0, 1, 0, 0),
        (1, 0, 0, 0),
        (0, 0, 1, 2),
        (0, 0, 0, 0),
    ]


def test_a_fenced_late_write_counts_nothing(broker: Broker, clock: ManualClock) -> None:
    """A worker whose lease ran out reports after the job was taken again: the store refuses
    its outcome and counts nothing for it; the lost attempt itself counts as retried."""
    broker.enqueue([NewJob(task="t", queue="qa", max_attempts=3)])
    (first,) = broker.claim("w1", ["qa"], 1, 10.0).jobs
    clock.advance(11.0)
    broker.reap()  # the lease ran out with attempts left: retried
    (second,) = broker.claim("w2", ["qa"], 1, LEASE).jobs
    assert second.attempt == first.attempt + 1
    late = Outcome(first.id, first.attempt, JobState.SUCCEEDED, result_json="1")
    assert broker.finish([late]) == [False]
    failed = Outcome(first.id, first.attempt, JobState.FAILED, error=ErrorInfo("E", "late"))
    assert broker.finish([failed]) == [False]
    assert _totals(broker) == (0, 1, 0, 0)
    assert broker.finish([Outcome(second.id, second.attempt, JobState.SUCCEEDED)]) == [True]
    assert broker.finish([Outcome(second.id, second.attempt, JobState.SUCCEEDED)]) == [False]
    assert _totals(broker) == (1, 1, 0, 0)


def test_a_released_attempt_counts_nothing_and_a_lost_last_one_is_dead(
    broker: Broker, clock: ManualClock
) -> None:
    broker.enqueue([NewJob(task="t", queue="qa", max_attempts=1)])
    (got,) = broker.claim("w", ["qa"], 1, 10.0).jobs
    assert broker.release([Lease(got.id, got.attempt)]) == [True]  # given back, not run
    assert _totals(broker) == (0, 0, 0, 0)
    broker.claim("w", ["qa"], 1, 10.0)
    clock.advance(11.0)
    broker.reap()  # its only attempt was lost: dead
    assert _totals(broker) == (0, 0, 1, 0)


def test_a_dead_job_retried_by_hand_counts_what_it_then_does(
    broker: Broker, clock: ManualClock
) -> None:
    """The dead end stays counted (it happened); the retry itself counts nothing; the run it
    leads to counts as it ends."""
    _run_one(broker, clock, "qa", 1.0, 1.0, JobState.DEAD)
    dead = broker.list_jobs(state=JobState.DEAD)[0]
    assert _totals(broker) == (0, 0, 1, 0)
    broker.retry(dead.id)
    assert _totals(broker) == (0, 0, 1, 0)
    (again,) = broker.claim("w", ["qa"], 1, LEASE).jobs
    assert again.id == dead.id
    assert broker.finish([Outcome(again.id, again.attempt, JobState.SUCCEEDED)]) == [True]
    assert _totals(broker) == (1, 0, 1, 0)
    assert broker.get(dead.id).state is JobState.SUCCEEDED  # type: ignore[union-attr]


def test_counts_of_one_queue_and_the_edges_of_the_window(
    broker: Broker, clock: ManualClock
) -> None:
    """The window is whole minutes: an end at the first second of its oldest minute is in
    it, one a second before is not; the current minute counts up to now."""
    t0 = clock.now()
    clock.set(t0 - 0.5)
    _run_one(broker, clock, "qa", 0.0, 0.5, JobState.SUCCEEDED)  # ends at t0 - 0.5 + 0.5
    clock.set(t0 - 1.0)
    broker.cancel(broker.enqueue([NewJob(task="t", queue="qa")])[0].id)  # t0 - 1: before
    clock.set(t0 + 59.0)
    _run_one(broker, clock, "qb", 0.0, 0.0, JobState.SUCCEEDED)
    clock.set(t0 + 60.0 * 2 + 30)  # now: in minute 2 of a window starting at t0
    _run_one(broker, clock, "qa", 0.0, 0.0, JobState.DEAD)
    got = broker.job_stats(minutes=3)
    assert got.since == t0
    assert _table(got) == [(2, 0, 0, 0), (0, 0, 0, 0), (0, 0, 1, 0)]
    assert _table(broker.job_stats(minutes=3, queue="qa")) == [
        (1, 0, 0, 0),
        (0, 0, 0, 0),
        (0, 0, 1, 0),
    ]
    assert _table(broker.job_stats(minutes=3, queue="qb"))[0] == (1, 0, 0, 0)
    assert _totals(broker, 3, "nowhere") == (0, 0, 0, 0)
    wider = broker.job_stats(minutes=4)
    assert _table(wider)[0] == (0, 0, 0, 1)  # the cancel at t0 - 1 is in the minute before


def test_prune_drops_the_counters_of_old_minutes(broker: Broker, clock: ManualClock) -> None:
    t0 = clock.now()
    _run_one(broker, clock, "qa", 0.0, 1.0, JobState.SUCCEEDED)  # minute t0
    clock.set(t0 + 120.0)
    _run_one(broker, clock, "qa", 0.0, 1.0, JobState.SUCCEEDED)  # minute t0 + 120
    clock.set(t0 + 150.0)
    assert _totals(broker, 3) == (2, 0, 0, 0)
    broker.prune(t0 + 60.0)  # the job of minute t0 goes, and its minute's counters
    assert _table(broker.job_stats(minutes=3)) == [(0, 0, 0, 0), (0, 0, 0, 0), (1, 0, 0, 0)]
    broker.prune(t0 + 120.0)  # the minute that began at older_than is kept
    assert _totals(broker, 3) == (1, 0, 0, 0)


def _same(got: Any, want: Any) -> None:
    assert got.count == want.count
    for name in ("p50", "p95", "p99"):
        assert getattr(got, name) == pytest.approx(getattr(want, name)), name


def test_percentiles_interpolate_as_percentile_cont() -> None:
    p = stats.percentiles([1.0, 2.0, 3.0, 4.0])
    assert (p.p50, p.p95, p.p99) == pytest.approx((2.5, 3.85, 3.97))
    assert stats.percentiles([]).p50 is None


@pytest.mark.parametrize(
    ("kwargs", "names"),
    [
        ({"minutes": 0}, "minutes"),
        ({"minutes": 1441}, "minutes"),
        ({"minutes": 1.5}, "minutes"),
        ({"queue": ""}, "queue"),
    ],
)
def test_a_bad_window_is_refused_by_name(
    broker: Broker, kwargs: dict[str, Any], names: str
) -> None:
    with pytest.raises(ConfigError, match=names):
        broker.job_stats(**kwargs)
