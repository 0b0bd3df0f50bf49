"""The adaptive prefetch's decisions (worker/adaptive.py), driven by given times: no sleeps."""

from __future__ import annotations

import pytest

from faena.core.job import Job, JobState
from faena.core.pools import DEFAULT_POOL
from faena.worker.adaptive import (
    DEPTH_PER_SLOT,
    LONG_FLOOR,
    POOL_QUIET,
    WARMUP,
    AdaptivePrefetch,
    pooled,
)

RTT = 0.0003  # a Redis round trip on this machine, about


def job(pool: str = DEFAULT_POOL) -> Job:
    return Job(
        id="j",
        task="t",
        queue="q",
        args_json="[]",
        kwargs_json="{}",
        state=JobState.RUNNING,
        priority=0,
        pool=pool,
        pool_slots=1,
        attempt=1,
        tries=1,
        max_attempts=3,
        timeout=None,
        idempotency_key=None,
        enqueued_at=0.0,
        run_at=0.0,
    )


def warmed(concurrency: int = 2, run: float = 0.00005, n: int = WARMUP) -> AdaptivePrefetch:
    a = AdaptivePrefetch(concurrency)
    a.round_trip(RTT)
    for _ in range(n):
        a.ran(run)
    return a


def test_nothing_is_prefetched_before_jobs_were_measured() -> None:
    a = AdaptivePrefetch(2)
    assert a.depth() == 0
    a.round_trip(RTT)
    for _ in range(WARMUP - 1):
        a.ran(0.00005)
    assert a.depth() == 0, "one attempt short of the warm-up"
    a.ran(0.00005)
    assert a.depth() > 0


def test_no_op_jobs_get_the_cap_of_a_few_per_slot() -> None:
    assert warmed(concurrency=2).depth() == 2 * DEPTH_PER_SLOT
    assert warmed(concurrency=16).depth() == 16 * DEPTH_PER_SLOT


def test_the_depth_keeps_the_last_prefetched_jobs_wait_within_a_few_round_trips() -> None:
    a = warmed(concurrency=2, run=2 * RTT, n=50)  # 2 round trips a job
    # budget 4 RTT of waiting per slot, 2 slots: 8 RTT / 2 RTT a job
    assert a.depth() == 4


def test_jobs_longer_than_a_few_round_trips_are_not_prefetched() -> None:
    assert warmed(concurrency=16, run=5 * RTT, n=50).depth() == 0


def test_one_long_job_drops_the_prefetch_to_zero_at_once() -> None:
    a = warmed(concurrency=16, n=50)
    assert a.depth() > 0
    a.ran(1.0)
    assert a.depth() == 0, "the mean starts again from the long run"
    for _ in range(5):
        a.ran(0.00005)
    assert a.depth() == 0, "a few short jobs do not bring it back yet"
    for _ in range(100):
        a.ran(0.00005)
    assert a.depth() > 0, "a stream of short jobs does"


def test_a_long_job_is_one_of_sixteen_round_trips_and_twenty_ms_at_least() -> None:
    a = AdaptivePrefetch(1)
    assert a.long_after() == LONG_FLOOR == 0.02, "no round trip measured yet"
    a.round_trip(0.0001)
    assert a.long_after() == LONG_FLOOR, "16 short round trips are less than the floor"
    b = AdaptivePrefetch(1)
    b.round_trip(0.002)  # a slow broker: 16 of its round trips
    assert b.long_after() == pytest.approx(0.032)


def test_prefetched_jobs_waiting_with_no_slot_freed_for_a_long_job_are_let_go() -> None:
    a = warmed()
    assert not a.stalled(0, last_progress=0.0, now=100.0), "nothing waits"
    assert not a.stalled(3, last_progress=10.0, now=10.0 + LONG_FLOOR / 2)
    assert a.stall_check_in(3, 10.0, 10.0 + LONG_FLOOR / 2) == pytest.approx(LONG_FLOOR / 2)
    assert a.stalled(3, last_progress=10.0, now=10.0 + LONG_FLOOR * 1.01)
    assert a.stall_check_in(0, 10.0, 11.0) is None
    a.stalled_seen()
    assert a.depth() == 0, "the running jobs are long: no prefetch"


def test_a_pooled_job_stops_the_prefetch_until_the_pools_were_quiet() -> None:
    a = warmed(n=50)
    assert a.depth() > 0
    a.ran(0.00005, job("etl"), {})
    assert a.depth() == 0
    for _ in range(POOL_QUIET - 1):
        a.ran(0.00005, job(), {})
    assert a.depth() == 0
    a.ran(0.00005, job(), {})
    assert a.depth() > 0
    a.claimed_pooled()
    assert a.depth() == 0, "a pooled job in a claim counts too"


def test_the_default_pool_counts_as_a_pool_once_the_app_sizes_it() -> None:
    assert not pooled(job(), {})
    assert pooled(job("etl"), {})
    assert pooled(job(), {DEFAULT_POOL: 2})


def test_a_zero_concurrency_is_refused() -> None:
    with pytest.raises(ValueError, match="concurrency must be >= 1, got 0"):
        AdaptivePrefetch(0)


def test_reports_wait_while_more_jobs_are_prefetched_than_the_slots_run_in_a_round_trip() -> None:
    assert AdaptivePrefetch(2).refill_at() == float("inf")  # nothing measured: never wait
    quick = warmed(concurrency=2, run=RTT / 4)  # 4 jobs a slot in one round trip
    assert quick.refill_at() == pytest.approx(8)
    slow = warmed(concurrency=2, run=2 * RTT, n=50)  # longer than a round trip: 1 a slot
    assert slow.refill_at() == 2
