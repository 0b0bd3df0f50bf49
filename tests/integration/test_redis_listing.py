"""A Redis listing over many jobs is many short script calls, each looking at a bounded
number of jobs, so it never blocks Redis for everyone; together they list the same jobs."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import pytest
from tests.conftest import REDIS_URL, need, port_open

from faena.brokers.redis import broker as redis_broker
from faena.brokers.redis.broker import RedisBroker
from faena.core.job import NewJob
from faena.core.states import JobState

BUDGET = 7


@pytest.fixture
def broker(monkeypatch: pytest.MonkeyPatch) -> Iterator[RedisBroker]:
    need(port_open("127.0.0.1", 6379), "Redis is not running on 127.0.0.1:6379")
    monkeypatch.setattr(redis_broker, "LIST_BUDGET", BUDGET)
    sep = "&" if "?" in REDIS_URL else "?"
    b = RedisBroker.from_url(f"{REDIS_URL}{sep}prefix=t{uuid.uuid4().hex[:12]}")
    b.setup()
    yield b
    b.destroy()
    b.close()


def test_one_list_call_looks_at_a_bounded_number_of_jobs(broker: RedisBroker) -> None:
    jobs = broker.enqueue(
        [NewJob(task="t", queue="rare" if i % 10 == 0 else "common") for i in range(40)]  # type: ignore[arg-type]
    )
    rare = [j.id for j in reversed(jobs) if j.queue == "rare"]
    # the newest 7 jobs hold no "rare" one: one call stops after 7 and says where
    reply = json.loads(broker._run("list", 0.0, ["", "rare", "", "10", "0", "", str(BUDGET)]))
    assert reply["records"] in ([], {})
    assert reply["cursor"] != ""
    # the broker calls again from there until it has the page or the walk ends
    assert [j.id for j in broker.list_jobs(queue="rare")] == rare
    assert [j.id for j in broker.list_jobs(queue="rare", limit=2, offset=1)] == rare[1:3]
    assert [j.id for j in broker.list_jobs(state=JobState.QUEUED, queue="rare", offset=3)] == rare[
        3:
    ]
    assert broker.list_jobs(queue="rare", offset=4) == []
