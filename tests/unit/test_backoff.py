"""The back-off a worker keeps while its broker fails: capped, jittered, never overflowing."""

from __future__ import annotations

import random

import pytest

from faena.core.backoff import Backoff
from faena.errors import ConfigError


def test_the_ceiling_doubles_from_the_base_up_to_the_cap() -> None:
    b = Backoff(base=0.1, cap=5.0)
    assert [b.ceiling(n) for n in range(1, 9)] == pytest.approx(
        [0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 5.0, 5.0]
    )
    assert b.ceiling(0) == b.ceiling(-3) == pytest.approx(0.1)


@pytest.mark.parametrize("failures", [1_024, 1_025, 10**6, 10**18, 10**100])
def test_any_count_of_failures_gives_the_cap_without_overflow(failures: int) -> None:
    # 0.1 * 2 ** 1024 overflowed a float: the worker died after 1,024 failed calls
    b = Backoff(base=0.1, cap=5.0)
    assert b.ceiling(failures) == 5.0
    assert 2.5 <= b.delay(failures, random.Random(1)) <= 5.0


def test_the_wait_is_jittered_within_half_the_ceiling_and_the_ceiling() -> None:
    b = Backoff(base=0.1, cap=5.0)
    rng = random.Random(42)
    for failures in (1, 3, 7, 50):
        top = b.ceiling(failures)
        waits = [b.delay(failures, rng) for _ in range(200)]
        assert all(top / 2 <= w <= top for w in waits)
        assert len(set(waits)) > 150  # spread, not one value


def test_the_draw_comes_from_the_injected_rng() -> None:
    b = Backoff()
    assert b.delay(4, random.Random(7)) == b.delay(4, random.Random(7))


@pytest.mark.parametrize(("base", "cap"), [(0.0, 1.0), (-1.0, 1.0), (2.0, 1.0)])
def test_a_backoff_without_a_positive_base_below_its_cap_is_refused(
    base: float, cap: float
) -> None:
    with pytest.raises(ConfigError, match="0 < base <= cap"):
        Backoff(base=base, cap=cap)


def test_a_lease_is_given_up_unrenewed_before_the_brokers_deadline() -> None:
    from faena.core.lease import next_check, overdue

    renewed = [("a", 100.0), ("b", 103.0)]
    assert overdue(renewed, 10.0, 108.9) == []
    assert overdue(renewed, 10.0, 109.0) == ["a"]  # 90 % of the lease: the broker's is 110
    assert overdue(renewed, 10.0, 112.0) == ["a", "b"]
    assert next_check(renewed, 10.0, 105.0) == 2.5  # a quarter lease at most
    assert next_check(renewed, 10.0, 108.0) == pytest.approx(1.0)
    assert next_check(renewed, 10.0, 200.0) == 0.01
    assert next_check([], 10.0, 0.0) == 2.5
