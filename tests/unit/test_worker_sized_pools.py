"""worker/sized_pools.SizedPools: the app's pools and the store's, read again now and then."""

from __future__ import annotations

from faena.brokers.protocol import PoolStat
from faena.core.pools import DEFAULT_POOL, DEFAULT_POOL_SLOTS
from faena.errors import BrokerError
from faena.worker.sized_pools import SizedPools


def test_the_store_is_read_every_refresh_period_and_the_app_wins() -> None:

    now = [0.0]
    store = [PoolStat(DEFAULT_POOL, 3, 0), PoolStat("etl", 5, 0)]
    reads: list[int] = []

    def read() -> list[PoolStat]:
        reads.append(1)
        return list(store)

    sized = SizedPools(lambda: {"etl": 24}, read, monotonic=lambda: now[0], every=10.0)
    assert sized() == {"etl": 24}, "nothing read yet"
    sized.refresh()
    assert sized() == {DEFAULT_POOL: 3, "etl": 24}
    store.clear()
    now[0] = 9.9
    sized.refresh()
    assert len(reads) == 1 and DEFAULT_POOL in sized()
    now[0] = 10.0
    sized.refresh()
    assert len(reads) == 2 and sized() == {"etl": 24}


def test_the_default_pools_built_in_size_is_no_sizing() -> None:

    sized = SizedPools(dict, lambda: [PoolStat(DEFAULT_POOL, DEFAULT_POOL_SLOTS, 0)])
    sized.refresh()
    assert sized() == {}


def test_a_failed_read_keeps_the_last_answer_and_no_store_reads_nothing() -> None:

    answers: list[list[PoolStat] | BrokerError] = [
        [PoolStat(DEFAULT_POOL, 2, 0)],
        BrokerError("down"),
    ]

    def read() -> list[PoolStat]:
        answer = answers.pop(0)
        if isinstance(answer, BrokerError):
            raise answer
        return answer

    sized = SizedPools(dict, read, every=0.0)
    sized.refresh()
    sized.refresh()  # fails
    assert sized() == {DEFAULT_POOL: 2}
    none = SizedPools(lambda: {"a": 1}, None)
    none.refresh()
    assert none() == {"a": 1}
