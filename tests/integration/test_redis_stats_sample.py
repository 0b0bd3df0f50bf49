"""Redis reads job_stats' percentiles sample in chunks (the ``sample`` function, a bounded
number of ids per call, so no call holds Redis for long); whatever the chunk, the sample is
the newest ``SAMPLE_LIMIT`` jobs that ran (of the queue asked for) among the newest
``SAMPLE_LOOK`` x ``SAMPLE_LIMIT`` finished in the window: newer cancelled jobs do not
push it out, and past that look budget it is smaller, never slower."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from tests.conftest import REDIS_URL, need, port_open

from faena.brokers.redis import views
from faena.brokers.redis.broker import RedisBroker
from faena.core import stats
from faena.core.clock import ManualClock
from faena.core.job import NewJob, Outcome
from faena.core.states import JobState

LIMIT = 4


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(1_800_000_000.0)


@pytest.fixture
def broker(monkeypatch: pytest.MonkeyPatch, clock: ManualClock) -> Iterator[RedisBroker]:
    need(port_open("127.0.0.1", 6379), "Redis is not running on 127.0.0.1:6379")
    monkeypatch.setattr(stats, "SAMPLE_LIMIT", LIMIT)
    sep = "&" if "?" in REDIS_URL else "?"
    b = RedisBroker.from_url(f"{REDIS_URL}{sep}prefix=t{uuid.uuid4().hex[:12]}", clock=clock)
    b.setup()
    yield b
    b.destroy()
    b.close()


def _run(broker: RedisBroker, clock: ManualClock, queue: str, run: float) -> None:
    broker.enqueue([NewJob(task="t", queue=queue, max_attempts=1)])
    clock.advance(1.0)  # waits 1 s
    (job,) = broker.claim("w", [queue], 1, 300.0).jobs
    clock.advance(run)
    assert broker.finish([Outcome(job.id, job.attempt, JobState.SUCCEEDED, result_json="1")])


def _cancel(broker: RedisBroker, clock: ManualClock, queue: str) -> None:
    clock.advance(0.5)  # no two jobs finish at one time: the done index's order is theirs
    doomed = broker.enqueue([NewJob(task="t", queue=queue)])[0]
    broker.cancel(doomed.id)  # finished, looked at, never in the sample


def test_the_sample_is_the_newest_jobs_that_ran_whatever_the_chunk(
    broker: RedisBroker, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(views, "SAMPLE_LOOK", 5)  # 20 ids looked at, at most
    for i in range(12):
        _run(broker, clock, "qa" if i % 3 else "qb", 1.0 + i)
        if i % 4 == 0:
            _cancel(broker, clock, "qa")
    for _ in range(6):  # the newest finished jobs never ran
        _cancel(broker, clock, "qa")
    # 21 finished: the 20 newest hold runs 2..12; the newest 4 that ran, of qa: 12, 11, 9, 8
    for chunk in (1, 2, 3, 1000):
        monkeypatch.setattr(views, "SAMPLE_CALL", chunk)
        got = broker.job_stats(minutes=5)
        assert got.run_time == stats.percentiles([12.0, 11.0, 10.0, 9.0]), chunk
        assert got.wait_time == stats.percentiles([1.0] * LIMIT)
        of_qa = broker.job_stats(minutes=5, queue="qa").run_time
        assert of_qa == stats.percentiles([12.0, 11.0, 9.0, 8.0]), chunk
        assert broker.job_stats(minutes=5, queue="nowhere").run_time.count == 0


def test_past_its_look_budget_the_sample_is_smaller(
    broker: RedisBroker, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(views, "SAMPLE_CALL", 3)
    monkeypatch.setattr(views, "SAMPLE_LOOK", 5)
    for i in range(3):
        _run(broker, clock, "qa", 1.0 + i)
    for _ in range(19):
        _cancel(broker, clock, "qa")
    assert broker.job_stats(minutes=5).run_time == stats.percentiles([3.0])  # 20 looked at
    _cancel(broker, clock, "qa")
    assert broker.job_stats(minutes=5).run_time.count == 0
    monkeypatch.setattr(views, "SAMPLE_LOOK", 10)
    assert broker.job_stats(minutes=5).run_time == stats.percentiles([3.0, 2.0, 1.0])
