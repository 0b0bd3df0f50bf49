"""Schedule ticks: ``fire_schedule`` records a tick and enqueues its jobs in one atomic step,
only if the tick is newer than the stored one; ``schedule_states`` reads what is stored."""

from __future__ import annotations

import threading
from collections.abc import Sequence

import pytest

from faena.brokers.protocol import Broker
from faena.core.clock import ManualClock
from faena.core.job import NewJob
from faena.core.states import JobState
from faena.errors import InvalidValueError, UnknownPoolError
from tests.contract.conftest import Backend


def jobs(n: int = 1, **kw: object) -> list[NewJob]:
    return [NewJob(task="nightly", queue="etl", **kw) for _ in range(n)]  # type: ignore[arg-type]


def all_jobs(broker: Broker) -> list[str]:
    return sorted(j.id for j in broker.list_jobs(limit=1000))


def test_a_newer_tick_is_recorded_with_its_jobs(broker: Broker, clock: ManualClock) -> None:
    assert broker.schedule_states() == []
    fired = broker.fire_schedule("nightly", 1000.0, jobs(2))
    assert fired is not None and len(fired) == 2
    assert {j.state for j in fired} == {JobState.QUEUED}
    assert all_jobs(broker) == sorted(j.id for j in fired)
    [state] = broker.schedule_states()
    assert (state.name, state.last_tick, state.fired_at) == ("nightly", 1000.0, clock.now())

    clock.advance(5)
    again = broker.fire_schedule("nightly", 2000.0, jobs(1))
    assert again is not None and len(again) == 1
    [state] = broker.schedule_states()
    assert (state.last_tick, state.fired_at) == (2000.0, clock.now())
    assert len(all_jobs(broker)) == 3


def test_the_same_or_an_older_tick_writes_nothing(broker: Broker, clock: ManualClock) -> None:
    assert broker.fire_schedule("nightly", 1000.0, jobs()) is not None
    before = all_jobs(broker)
    clock.advance(1)
    assert broker.fire_schedule("nightly", 1000.0, jobs()) is None
    assert broker.fire_schedule("nightly", 999.0, jobs()) is None
    assert all_jobs(broker) == before
    [state] = broker.schedule_states()
    assert state.last_tick == 1000.0 and state.fired_at == clock.now() - 1


def test_schedules_are_kept_apart_and_listed_by_name(broker: Broker) -> None:
    assert broker.fire_schedule("b", 10.0, jobs()) is not None
    assert broker.fire_schedule("a", 5.0, jobs()) is not None
    assert broker.fire_schedule("a", 5.0, jobs()) is None
    assert [(s.name, s.last_tick) for s in broker.schedule_states()] == [("a", 5.0), ("b", 10.0)]


def test_a_tick_may_be_recorded_without_jobs(broker: Broker) -> None:
    assert broker.fire_schedule("armed", 100.5, []) == []
    assert all_jobs(broker) == []
    assert [(s.name, s.last_tick) for s in broker.schedule_states()] == [("armed", 100.5)]
    assert broker.fire_schedule("armed", 100.5, jobs()) is None


def test_an_unknown_pool_writes_nothing_not_even_the_tick(broker: Broker) -> None:
    with pytest.raises(UnknownPoolError, match="nope"):
        broker.fire_schedule("nightly", 1000.0, [*jobs(), *jobs(pool="nope")])
    assert all_jobs(broker) == []
    assert broker.schedule_states() == []
    assert broker.fire_schedule("nightly", 1000.0, jobs()) is not None  # the tick is free


@pytest.mark.parametrize(
    ("schedule", "tick"),
    [("", 1.0), ("bad name", 1.0), ("x" * 65, 1.0), ("ok", float("nan")), ("ok", float("inf"))],
)
def test_bad_names_and_ticks_are_refused_before_anything_is_written(
    broker: Broker, schedule: str, tick: float
) -> None:
    with pytest.raises(InvalidValueError):
        broker.fire_schedule(schedule, tick, jobs())
    assert all_jobs(broker) == [] and broker.schedule_states() == []


def test_the_jobs_of_a_tick_keep_their_idempotency_keys(broker: Broker) -> None:
    [job] = broker.fire_schedule("nightly", 1.0, jobs(idempotency_key="schedule:nightly:1")) or []
    stored = broker.get(job.id)
    assert stored is not None and stored.idempotency_key == "schedule:nightly:1"


def test_concurrent_fires_of_one_tick_create_its_jobs_once(
    backend: Backend, broker: Broker, clock: ManualClock
) -> None:
    """Eight clients (each its own connection where the backend has them) fire the same ten
    ticks at once: each tick's two jobs are created once, by one of them."""
    clients: list[Broker] = []
    for _ in range(8):
        if backend.url is None:
            clients.append(broker)
        else:
            other = backend.open(clock)
            other.setup()
            clients.append(other)
    won: list[tuple[float, int]] = []
    lock = threading.Lock()
    start = threading.Barrier(len(clients))

    def fire(client: Broker) -> None:
        start.wait()
        for tick in range(1, 11):
            got: Sequence[object] | None = client.fire_schedule("every", float(tick), jobs(2))
            if got is not None:
                with lock:
                    won.append((float(tick), len(got)))

    threads = [threading.Thread(target=fire, args=(c,)) for c in clients]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
    finally:
        for c in clients:
            if c is not broker:
                c.close()
    ticks = sorted(t for t, _ in won)
    assert len(set(ticks)) == len(ticks), f"a tick fired twice: {ticks}"
    assert all(n == 2 for _, n in won)
    assert len(all_jobs(broker)) == 2 * len(won)
    [state] = broker.schedule_states()
    assert state.last_tick == 10.0 and ticks[-1] == 10.0
