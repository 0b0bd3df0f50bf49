"""``job_stats`` on every backend, with the injected clock: finished jobs per minute by state,
run and wait time percentiles over a window of whole minutes, of one queue or all."""

from __future__ import annotations

from typing import Any

import pytest

from faena.brokers.protocol import Broker
from faena.core import stats
from faena.core.clock import ManualClock
from faena.core.job import ErrorInfo, NewJob, Outcome
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
    table = [(m.succeeded, m.dead, m.cancelled) for m in got.minutes]
    assert table == [(5, 0, 0), (0, 1, 0), (0, 0, 1), (0, 0, 0)]
    assert all(m.exact for m in got.minutes)
    _same(got.run_time, stats.percentiles(runs))
    _same(got.wait_time, stats.percentiles(waits))
    assert got.run_time.count == 6 and got.sample_limit == stats.SAMPLE_LIMIT

    of_qb = broker.job_stats(minutes=4, queue="qb")
    assert [(m.succeeded, m.dead, m.cancelled) for m in of_qb.minutes][:2] == [(0, 0, 0), (0, 1, 0)]
    _same(of_qb.run_time, stats.percentiles([4.0]))
    assert broker.job_stats(minutes=4, queue="nowhere").run_time.count == 0

    last_minute = broker.job_stats(minutes=1)
    assert len(last_minute.minutes) == 1 and last_minute.run_time.p50 is None


def test_a_retried_dead_job_is_not_counted_as_dead(broker: Broker, clock: ManualClock) -> None:
    _run_one(broker, clock, "qa", 1.0, 1.0, JobState.DEAD)
    dead = broker.list_jobs(state=JobState.DEAD)[0]
    assert sum(m.dead for m in broker.job_stats(minutes=5).minutes) == 1
    broker.retry(dead.id)
    assert sum(m.dead for m in broker.job_stats(minutes=5).minutes) == 0


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


def test_a_busy_minute_on_redis_is_scaled_from_its_sample(
    broker: Broker, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Redis splits a minute by state from at most MINUTE_SAMPLE of its jobs: more than that
    and the minute says ``exact=False``, its total still the exact ZCOUNT; other backends
    count every job."""
    from faena.brokers.redis import views

    monkeypatch.setattr(views, "MINUTE_SAMPLE", 3)
    for _ in range(8):
        _run_one(broker, clock, "qa", 0.0, 1.0, JobState.SUCCEEDED)
    got = broker.job_stats(minutes=1).minutes[0]
    assert got.succeeded == 8
    assert got.exact is (broker.kind != "redis")
