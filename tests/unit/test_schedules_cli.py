"""faena schedules APP, and the schedule metrics of a process's registry."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

import faena
from faena.cli.main import cli
from faena.core.clock import ManualClock
from faena.observability.metrics import new_registry, render
from faena.observability.metrics_schedules import register_schedule_metrics
from faena.schedules.scheduler import Scheduler

APP = """
import faena

app = faena.App(broker="sqlite:///{db}")


@app.task(name="etl_day", queue="etl")
def etl_day(day: str) -> None:
    return None


app.schedule("nightly", task=etl_day, cron="0 2 * * *", tz="Europe/Madrid", tick_kwarg="day")
app.schedule("often", task=etl_day, every=300, args=("x",), missed="catch_up", catch_up_max=4)
"""


@pytest.fixture
def app_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    name = f"sched_app_{tmp_path.name.replace('-', '_')}"
    (tmp_path / f"{name}.py").write_text(APP.format(db=tmp_path / "f.db"))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delenv("FAENA_BROKER_URL", raising=False)
    yield name
    module = sys.modules.pop(name, None)
    if module is not None:
        module.app.close()


def test_the_listing_shows_each_schedule_and_what_the_store_keeps(app_module: str) -> None:
    module = __import__(app_module)
    app: faena.App = module.app
    app.broker.fire_schedule("often", 1_800_000_000.0, [])  # as a worker's first round arms it
    result = CliRunner().invoke(cli, ["schedules", f"{app_module}:app"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].split() == [
        "NAME", "EXPRESSION", "TZ", "NEXT", "TICK", "LAST", "TICK", "RECORDED", "MISSED", "TARGET"
    ]  # fmt: skip
    nightly = next(line for line in lines if line.startswith("nightly"))
    assert "0 2 * * *" in nightly and "Europe/Madrid" in nightly and "never" in nightly
    assert "T02:00:00+0" in nightly and "task etl_day" in nightly
    often = next(line for line in lines if line.startswith("often"))
    assert "every 5m" in often and "2027-01-15T08:00:00" in often and "catch_up (max 4)" in often

    as_json = CliRunner().invoke(cli, ["schedules", f"{app_module}:app", "--json"])
    rows = {r["name"]: r for r in json.loads(as_json.stdout)}
    assert rows["often"]["last_tick"] == 1_800_000_000.0 and rows["nightly"]["last_tick"] is None


def test_a_missing_store_is_refused_not_created(app_module: str, tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["schedules", f"{app_module}:app"])
    assert result.exit_code == 1 and "no faena store" in result.stderr
    assert not (tmp_path / "f.db").exists()


def test_worker_server_and_up_take_no_scheduler() -> None:
    for command in ("worker", "server", "up"):
        result = CliRunner().invoke(cli, [command, "--help"])
        assert "--no-scheduler" in result.stdout and "FAENA_NO_SCHEDULER" in result.stdout


def test_the_registry_counts_fires_and_reads_the_store_at_scrape_time() -> None:
    clock = ManualClock(1_800_000_000.0)
    app = faena.App("memory://", clock=clock)

    @app.task(name="t")
    def t() -> None:
        return None

    app.schedule("five", task=t, every=300)
    registry = new_registry(process=False)
    register_schedule_metrics(registry, app.schedules, app.events, lambda: app.broker)
    scheduler = Scheduler(app.broker, app.schedules, clock, events=app.events)
    scheduler.run_once()  # armed
    clock.advance(302)
    scheduler.run_once()
    text = render(registry).decode()
    assert 'faena_schedule_fires_total{schedule="five"} 1.0' in text
    assert 'faena_schedule_lag_seconds_bucket{le="1.0",schedule="five"} 0.0' in text
    assert 'faena_schedule_lag_seconds_bucket{le="2.0",schedule="five"} 1.0' in text  # 302 - 300
    assert 'faena_schedule_last_fire_timestamp_seconds{schedule="five"} 1.800000302e+09' in text
    assert 'faena_schedule_last_tick_timestamp_seconds{schedule="five"} 1.8000003e+09' in text
    assert 'faena_schedule_interval_seconds{schedule="five"} 300.0' in text
