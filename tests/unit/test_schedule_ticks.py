"""Tick arithmetic of schedules (pure): cron in a time zone with its DST rules, intervals, the
missed-tick policies, and the checks at declaration."""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from faena.errors import ConfigError
from faena.schedules.missed import Missed, check_missed, plan
from faena.schedules.triggers import Cron, Every

MADRID = ZoneInfo("Europe/Madrid")


def at(*fields: int, fold: int = 0) -> float:
    return datetime(*fields, tzinfo=MADRID, fold=fold).timestamp()  # type: ignore[misc]


def walls(ticks: list[float]) -> list[str]:
    return [datetime.fromtimestamp(t, MADRID).strftime("%m-%d %H:%M%z") for t in ticks]


def test_a_daily_cron_ticks_at_its_wall_time_in_its_zone() -> None:
    cron = Cron("0 2 * * *", "Europe/Madrid")
    ticks = list(cron.ticks(at(2026, 7, 1, 12, 0), at(2026, 7, 4, 12, 0)))
    assert walls(ticks) == ["07-02 02:00+0200", "07-03 02:00+0200", "07-04 02:00+0200"]
    assert cron.after(ticks[0]) == ticks[1]  # strictly after
    assert cron.at_or_before(ticks[1]) == ticks[1]
    assert cron.at_or_before(ticks[1] - 1) == ticks[0]


def test_spring_forward_fires_a_skipped_wall_time_once_after_the_gap() -> None:
    # 2026-03-29: 02:00 CET becomes 03:00 CEST in Madrid; 02:30 does not exist that day
    cron = Cron("30 2 * * *", "Europe/Madrid")
    ticks = list(cron.ticks(at(2026, 3, 27, 12, 0), at(2026, 3, 31, 12, 0)))
    assert walls(ticks) == [
        "03-28 02:30+0100",
        "03-29 03:00+0200",
        "03-30 02:30+0200",
        "03-31 02:30+0200",
    ]


def test_fall_back_fires_a_repeated_wall_time_once() -> None:
    # 2026-10-25: 03:00 CEST becomes 02:00 CET; 02:30 happens twice
    cron = Cron("30 2 * * *", "Europe/Madrid")
    ticks = list(cron.ticks(at(2026, 10, 24, 12, 0), at(2026, 10, 26, 12, 0)))
    assert walls(ticks) == ["10-25 02:30+0200", "10-26 02:30+0100"]
    assert cron.at_or_before(at(2026, 10, 25, 2, 45, fold=1)) == at(2026, 10, 25, 2, 30)


def test_a_wildcard_hour_follows_real_time_through_both_dst_changes() -> None:
    cron = Cron("*/30 * * * *", "Europe/Madrid")
    back = list(cron.ticks(at(2026, 10, 25, 1, 45), at(2026, 10, 25, 3, 0)))
    assert [b - a for a, b in itertools.pairwise(back)] == [1800.0] * (len(back) - 1)
    assert len(back) == 5  # 02:00 and 02:30 twice, then 03:00
    forward = list(cron.ticks(at(2026, 3, 29, 1, 15), at(2026, 3, 29, 3, 45)))
    assert walls(forward) == ["03-29 01:30+0100", "03-29 03:00+0200", "03-29 03:30+0200"]


def test_an_interval_ticks_on_multiples_of_itself_from_its_anchor() -> None:
    every = Every(300)
    assert every.after(1_000_000.0) == 1_000_200.0
    assert every.after(1_000_200.0) == 1_000_500.0
    assert every.at_or_before(1_000_200.0) == 1_000_200.0
    assert every.at_or_before(1_000_199.9) == 999_900.0
    assert Every(timedelta(hours=1), anchor=30.0).after(3600.0) == 3630.0
    assert every.describe() == ("every 5m", "-")
    assert every.longest_gap(0.0) == 300.0


def test_the_longest_gap_of_a_weekday_cron_spans_the_weekend() -> None:
    assert Cron("0 2 * * 1-5").longest_gap(at(2026, 7, 1)) == 3 * 86_400.0
    assert Cron("0 * * * *").longest_gap(at(2026, 7, 1)) == 3600.0
    # busy: more ticks than are read one by one; the weekend comes from the days' own cron
    assert Cron("*/5 9-17 * * 1-5").longest_gap(at(2026, 7, 1)) == 3 * 86_400.0
    assert Cron("0 2 * * *", "Europe/Madrid").longest_gap(at(2026, 7, 1)) == 25 * 3600.0


@pytest.mark.parametrize(
    ("expr", "words"),
    [
        ("0 2 * *", "has 4 field"),
        ("0 0 2 * * *", "has 6 field"),
        ("61 2 * * *", "not valid"),
        ("", "not valid"),
        ("@often", "has 1 field"),
    ],
)
def test_bad_cron_expressions_are_refused_naming_the_value_and_the_fix(
    expr: str, words: str
) -> None:
    with pytest.raises(ConfigError, match=words) as err:
        Cron(expr)
    assert repr(expr) in str(err.value) and "e.g." in str(err.value)


def test_aliases_are_read() -> None:
    assert Cron("@daily").after(0.0) == 86_400.0


def test_bad_zones_and_intervals_are_refused() -> None:
    with pytest.raises(ConfigError, match="'Mars/Olympus' is not known"):
        Cron("0 2 * * *", "Mars/Olympus")
    for bad in (0.5, -1, float("inf"), "5m", True):
        with pytest.raises(ConfigError, match="interval"):
            Every(bad)  # type: ignore[arg-type]


def test_policies_are_checked() -> None:
    assert check_missed("catch_up", 5) == (Missed.CATCH_UP, 5)
    with pytest.raises(ConfigError, match="'later' is not a policy"):
        check_missed("later", 1)
    with pytest.raises(ConfigError, match="catch_up_max=0"):
        check_missed("catch_up", 0)
    with pytest.raises(ConfigError, match="only read with missed='catch_up'"):
        check_missed("skip", 3)


def test_a_schedule_never_seen_is_armed_at_the_latest_past_tick() -> None:
    every = Every(60)
    assert plan(every, None, 1000.0, Missed.SKIP).arm == 960.0
    assert plan(every, None, 1000.0, Missed.SKIP).fire == ()


def test_nothing_is_due_before_the_next_tick() -> None:
    assert plan(Every(60), 960.0, 1019.0, Missed.SKIP).fire == ()


def test_one_due_tick_fires_under_either_policy() -> None:
    for policy, most in ((Missed.SKIP, 1), (Missed.CATCH_UP, 5)):
        p = plan(Every(60), 960.0, 1021.0, policy, most)
        assert p.fire == (1020.0,) and p.skipped == 0


def test_skip_fires_only_the_latest_due_tick_and_counts_the_rest() -> None:
    p = plan(Every(60), 960.0, 1500.0, Missed.SKIP)
    assert p.fire == (1500.0,)
    assert (p.skipped, p.skipped_first, p.skipped_last) == (8, 1020.0, 1440.0)


def test_catch_up_fires_the_latest_n_oldest_first_and_skips_older_ones() -> None:
    p = plan(Every(60), 960.0, 1500.0, Missed.CATCH_UP, 3)
    assert p.fire == (1380.0, 1440.0, 1500.0)
    assert (p.skipped, p.skipped_first, p.skipped_last) == (6, 1020.0, 1320.0)
    whole = plan(Every(60), 960.0, 1500.0, Missed.CATCH_UP, 100)
    assert whole.fire == tuple(float(t) for t in range(1020, 1501, 60)) and whole.skipped == 0


def test_catch_up_across_the_fall_back_night_in_madrid() -> None:
    cron = Cron("0 * * * *", "Europe/Madrid")
    last = at(2026, 10, 25, 0, 0)
    p = plan(cron, last, at(2026, 10, 25, 4, 10), Missed.CATCH_UP, 10)
    assert walls(list(p.fire)) == [
        "10-25 01:00+0200",
        "10-25 02:00+0200",
        "10-25 02:00+0100",
        "10-25 03:00+0100",
        "10-25 04:00+0100",
    ]


def test_a_long_outage_counts_skipped_ticks_up_to_a_bound() -> None:
    p = plan(Every(1), 0.0, 1_000_000.0, Missed.SKIP)
    assert p.fire == (1_000_000.0,) and p.skipped_at_least and p.skipped == 1000
    assert p.skipped_last == 999_999.0


def test_catch_up_across_the_spring_forward_night_finds_the_moved_tick_backwards() -> None:
    cron = Cron("30 2 * * *", "Europe/Madrid")
    p = plan(cron, at(2026, 3, 28, 2, 30), at(2026, 3, 30, 3, 0), Missed.CATCH_UP, 5)
    assert walls(list(p.fire)) == ["03-29 03:00+0200", "03-30 02:30+0200"]
    assert cron.at_or_before(at(2026, 3, 29, 12, 0)) == at(2026, 3, 29, 3, 0)
