"""The scheduler's rounds and App.schedule, on the memory broker with a manual clock."""

from __future__ import annotations

import json
import logging
from datetime import timedelta

import pytest

import faena
from faena.core.clock import ManualClock
from faena.core.events import Event
from faena.errors import ConfigError, PayloadError, UnknownTaskError
from faena.schedules.runner import SchedulerThread, start_scheduler
from faena.schedules.scheduler import SCHEDULE_FIRED, Scheduler

START = 1_800_000_000.0  # a multiple of 60


def make_app(clock: ManualClock) -> faena.App:
    app = faena.App("memory://", clock=clock, pools={"etl_pool": 4})

    @app.task(name="etl_day", queue="etl", pool="etl_pool")
    def etl_day(day: str, source: str = "crm") -> str:
        return day

    return app


def scheduler(app: faena.App) -> Scheduler:
    return Scheduler(app.broker, app.schedules, app.clock, events=app.events, process="t")


def test_a_schedule_arms_then_fires_each_tick_once_with_its_arguments() -> None:
    clock = ManualClock(START + 10)
    app = make_app(clock)
    app.schedule("minutely", task="etl_day", every=60, kwargs={"source": "erp"}, tick_kwarg="day")
    s = scheduler(app)
    assert s.run_once() == []  # armed at START
    assert app.jobs() == []
    clock.advance(50)  # START + 60: the next tick
    [fired] = s.run_once()
    assert (fired.schedule, fired.tick, fired.lag) == ("minutely", START + 60, 0.0)
    assert s.run_once() == []  # the same tick again: nothing
    [job] = [h.job for h in app.jobs()]
    assert job.task == "etl_day" and job.queue == "etl" and job.pool == "etl_pool"
    assert job.kwargs == {"source": "erp", "day": "2027-01-15T08:01:00+00:00"}
    assert job.idempotency_key == f"schedule:minutely:{int(START + 60)}"


def test_two_schedulers_on_one_store_fire_each_tick_once() -> None:
    clock = ManualClock(START)
    app = make_app(clock)
    app.schedule("every", task="etl_day", every=timedelta(seconds=30), args=("d",))
    a, b = scheduler(app), scheduler(app)
    a.run_once()
    fired = []
    for _ in range(20):
        clock.advance(15)
        fired += a.run_once() + b.run_once()
    assert sorted(f.tick for f in fired) == [START + 30 * k for k in range(1, 11)]
    assert len(app.jobs()) == 10


def test_skip_after_an_outage_fires_the_latest_tick_and_logs_the_skipped(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = ManualClock(START)
    app = make_app(clock)
    app.schedule("m", task="etl_day", every=60, args=("d",))
    s = scheduler(app)
    s.run_once()
    clock.advance(600 + 5)
    with caplog.at_level(logging.INFO, logger="faena.schedules"):
        [fired] = s.run_once()
    assert fired.tick == START + 600 and fired.lag == 5.0
    [skipped] = [r for r in caplog.records if getattr(r, "event", "") == "schedule.skipped"]
    assert skipped.skipped == 9 and skipped.first_tick == START + 60  # type: ignore[attr-defined]
    [line] = [r for r in caplog.records if getattr(r, "event", "") == "schedule.fired"]
    assert line.schedule == "m" and line.lag_seconds == 5.0  # type: ignore[attr-defined]


def test_catch_up_fires_at_most_n_missed_ticks_oldest_first() -> None:
    clock = ManualClock(START)
    app = make_app(clock)
    app.schedule("m", task="etl_day", every=60, args=("d",), missed="catch_up", catch_up_max=3)
    s = scheduler(app)
    s.run_once()
    clock.advance(600)
    assert [f.tick for f in s.run_once()] == [START + 480, START + 540, START + 600]


def test_fires_are_published_on_the_app_bus() -> None:
    clock = ManualClock(START)
    app = make_app(clock)
    app.schedule("m", task="etl_day", every=60, args=("d",))
    seen: list[Event] = []
    app.events.subscribe(SCHEDULE_FIRED, seen.append)
    s = scheduler(app)
    s.run_once()
    clock.advance(60)
    s.run_once()
    assert [(e.fields["schedule"], e.fields["tick"]) for e in seen] == [("m", START + 60)]


def test_a_failing_target_is_logged_once_and_other_schedules_go_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = ManualClock(START)
    app = make_app(clock)
    app.schedule("bad", task="etl_day", every=60, args=("d",), pool="missing")
    app.schedule("good", task="etl_day", every=60, args=("d",))
    s = scheduler(app)
    s.run_once()
    with caplog.at_level(logging.WARNING, logger="faena.schedules"):
        for _ in range(3):
            clock.advance(60)
            assert [f.schedule for f in s.run_once()] == ["good"]
    failed = [r for r in caplog.records if getattr(r, "event", "") == "schedule.failed"]
    assert len(failed) == 1 and failed[0].schedule == "bad"  # type: ignore[attr-defined]
    assert failed[0].error_type == "UnknownPoolError"  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("kwargs", "error", "words"),
    [
        ({"cron": "0 2 * *"}, ConfigError, "'nightly'.*has 4 field"),
        ({"cron": "0 2 * * *", "every": 60}, ConfigError, "exactly one of cron"),
        ({}, ConfigError, "exactly one of cron"),
        ({"every": 60, "tz": "UTC"}, ConfigError, "tz= goes with cron="),
        ({"cron": "0 2 * * *", "tz": "Nowhere/City"}, ConfigError, "not known"),
        ({"every": 60, "missed": "later"}, ConfigError, "not a policy"),
        ({"every": 60, "args": (1, 2, 3)}, PayloadError, "do not fit"),
        ({"every": 60, "args": ({1, 2},)}, PayloadError, "JSON"),
        ({"every": 60, "idempotency_key": "k"}, ConfigError, "cannot be set"),
        ({"every": 60, "priority": "high"}, ConfigError, "priority"),
    ],
)
def test_declarations_are_checked_in_full(
    kwargs: dict[str, object], error: type[Exception], words: str
) -> None:
    app = make_app(ManualClock())
    kw = {"args": ("d",), **kwargs}
    with pytest.raises(error, match=words):
        app.schedule("nightly", task="etl_day", **kw)  # type: ignore[arg-type]
    assert app.schedules == {}


def test_names_are_unique_and_tasks_must_be_registered() -> None:
    app = make_app(ManualClock())
    app.schedule("n", task="etl_day", every=60, args=("d",))
    with pytest.raises(ConfigError, match="declared twice"):
        app.schedule("n", task="etl_day", every=60, args=("d",))
    with pytest.raises(UnknownTaskError, match="nope"):
        app.schedule("m", task="nope", every=60)
    with pytest.raises(ConfigError, match="schedule name"):
        app.schedule("bad name", task="etl_day", every=60, args=("d",))


def test_the_thread_runs_rounds_until_stopped() -> None:
    clock = ManualClock(START)
    app = make_app(clock)
    assert start_scheduler(app, "t") is None  # no schedules: no thread
    app.schedule("m", task="etl_day", every=1, args=("d",))
    thread = start_scheduler(app, "t", poll_seconds=0.01)
    assert isinstance(thread, SchedulerThread)
    try:
        for _ in range(3):
            clock.advance(1)
            deadline = 0
            while len(app.jobs()) < _ + 1 and deadline < 500:
                thread._stop.wait(0.01)
                deadline += 1
    finally:
        thread.stop()
    assert len(app.jobs()) == 3
    assert json.loads(app.jobs()[0].job.args_json) == ["d"]
    assert start_scheduler(app, "t", enabled=False) is None


def test_a_store_that_cannot_be_opened_is_a_failed_round_not_a_failed_start(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = ManualClock(START)
    app = make_app(clock)
    app.schedule("m", task="etl_day", every=60, args=("d",))
    opened: list[faena.App] = []

    def store():  # type: ignore[no-untyped-def]
        if not opened:
            opened.append(app)
            raise faena.BrokerError("database is starting up")
        return app.broker

    s = Scheduler(store, app.schedules, clock, process="t")
    with caplog.at_level(logging.WARNING, logger="faena.schedules"):
        assert s.run_once() == []
    [failed] = [r for r in caplog.records if getattr(r, "event", "") == "schedule.failed"]
    assert failed.schedule == "*" and "starting up" in failed.error_message  # type: ignore[attr-defined]
    s.run_once()  # opens now: armed
    clock.advance(60)
    assert [f.tick for f in s.run_once()] == [START + 60]


def test_no_scheduler_starts_no_thread_and_tells_the_workers_started_inside(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from faena.cli.schedules import NO_SCHEDULER_ENV, scheduler_running

    monkeypatch.delenv(NO_SCHEDULER_ENV, raising=False)
    app = make_app(ManualClock(START))
    app.schedule("m", task="etl_day", every=60, args=("d",))
    with scheduler_running(app, "worker", disabled=True):
        import os

        assert os.environ[NO_SCHEDULER_ENV] == "1"
    assert app.broker.schedule_states() == []  # no round ran
