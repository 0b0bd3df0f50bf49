"""Redis reads job_stats' percentiles sample in chunks (the ``sample`` function, a bounded
number of ids per call, so no call holds Redis for long); together the chunks give the
sample one call gives: the jobs that ran among the newest ``SAMPLE_LIMIT`` finished in the
window, of the queue asked for."""

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

LIMIT = 7


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


def test_the_chunks_give_the_sample_of_one_call(
    broker: RedisBroker, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    ran: list[tuple[str, float]] = []
    for i in range(12):
        queue = "qa" if i % 3 else "qb"
        _run(broker, clock, queue, 1.0 + i)
        ran.append((queue, 1.0 + i))
        if i % 4 == 0:  # a cancelled job: finished, looked at, never in the sample
            doomed = broker.enqueue([NewJob(task="t", queue=queue)])[0]
            broker.cancel(doomed.id)
            ran.append((queue, -1.0))
            clock.advance(0.5)
    # the newest LIMIT finished, newest first; of them, those that ran
    newest = list(reversed(ran))[:LIMIT]
    want_all = [run for _q, run in newest if run > 0]
    want_qa = [run for q, run in newest if q == "qa" and run > 0]

    monkeypatch.setattr(views, "SAMPLE_CALL", 1000)
    one_call = broker.job_stats(minutes=5)
    for chunk in (1, 2, 3, LIMIT):
        monkeypatch.setattr(views, "SAMPLE_CALL", chunk)
        got = broker.job_stats(minutes=5)
        assert got.run_time == one_call.run_time and got.wait_time == one_call.wait_time
        assert got.run_time == stats.percentiles(want_all), chunk
        assert got.wait_time == stats.percentiles([1.0] * len(want_all))
        assert broker.job_stats(minutes=5, queue="qa").run_time == stats.percentiles(want_qa)
    assert broker.job_stats(minutes=5, queue="nowhere").run_time.count == 0
