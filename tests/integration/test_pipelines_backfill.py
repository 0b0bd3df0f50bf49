"""Pipelines with a real worker on SQLite: a 30-day backfill runs every step once, hands
off through the broker and never holds more of a pool than its size; the CLI over it."""

from __future__ import annotations

import datetime as dt
import json
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from tests.worker_threads import run

import faena
from faena.cli.main import cli as main
from faena.core.dependencies import RunState
from faena.pipelines import Pipeline
from faena.pipelines.backfill import backfill

APP_MODULE = """
import faena
from faena.pipelines import Pipeline, param

app = faena.App(broker=BROKER, pools={"etl_pool": 2, "dq_pool": 1})


@app.task(queue="etl", pool="etl_pool")
def extract(day: str) -> dict:
    return {"day": day}


@app.task(queue="etl", pool="dq_pool")
def check(upstream: dict) -> int:
    return len(upstream)


etl = Pipeline(app, "etl_daily", key="{day}")
e = etl.step("extract", extract, kwargs={"day": param("day")})
etl.step("check", check, after=e, results=True)
"""


def _app_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str) -> str:
    url = f"sqlite:///{tmp_path / 'faena.db'}"
    (tmp_path / f"{name}.py").write_text(APP_MODULE.replace("BROKER", repr(url)))
    monkeypatch.syspath_prepend(str(tmp_path))
    return url


def test_a_30_day_backfill_never_exceeds_the_pools(tmp_path: Path, stop: list) -> None:
    app = faena.App(broker=f"sqlite:///{tmp_path / 'f.db'}", pools={"etl_pool": 2, "dq_pool": 1})
    lock = threading.Lock()
    running = {"etl_pool": 0, "dq_pool": 0}
    peak = {"etl_pool": 0, "dq_pool": 0}
    calls: list[str] = []

    def hold(pool: str, what: str) -> None:
        with lock:
            running[pool] += 1
            peak[pool] = max(peak[pool], running[pool])
            calls.append(what)
        time.sleep(0.005)
        with lock:
            running[pool] -= 1

    @app.task(queue="etl", pool="etl_pool")
    def extract(day: str) -> str:
        hold("etl_pool", f"extract {day}")
        return day

    @app.task(queue="etl", pool="etl_pool")
    def transform(day: str, part: int) -> int:
        hold("etl_pool", f"transform {day} {part}")
        return part

    @app.task(queue="etl", pool="dq_pool")
    def check(upstream: dict[str, Any]) -> int:
        hold("dq_pool", "check")
        return sum(v for v in upstream.values())

    etl = Pipeline(app, "etl_backfill", key="{day}")
    e = etl.step("extract", extract, kwargs={"day": faena.pipelines.param("day")})
    parts = [
        etl.step(f"t{i}", transform, kwargs={"day": faena.pipelines.param("day"), "part": i})
        for i in range(3)
    ]
    q = etl.step("check", check, results=True)
    etl.chain(e, parts, q)

    made = backfill(etl, dt.date(2026, 11, 1), dt.date(2026, 11, 30))
    assert len(made) == 30 and all(r.created for r in made)
    again = backfill(etl, dt.date(2026, 11, 1), dt.date(2026, 11, 30))
    assert [r.id for r in again] == [r.id for r in made] and not any(r.created for r in again)

    stop.append(run(app, concurrency=6))
    deadline = time.monotonic() + 60
    while True:
        runs = [app.broker.get_run(r.id) for r in made]
        if all(r is not None and r.state is not RunState.RUNNING for r in runs):
            break
        assert time.monotonic() < deadline, "backfill did not finish"
        time.sleep(0.05)
    assert all(r is not None and r.state is RunState.SUCCEEDED for r in runs)
    assert peak["etl_pool"] <= 2 and peak["dq_pool"] <= 1
    assert len(calls) == 30 * 5  # every step once
    first = runs[0]
    assert first is not None
    check_job = app.broker.get(first.step("check").job_id)
    assert check_job is not None and check_job.result == 0 + 1 + 2


def test_cli_backfill_runs_show_retry_cancel(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = _app_module(tmp_path, monkeypatch, "pl_cli_app")
    cli = CliRunner()
    try:
        args = ["--app", "pl_cli_app:app"]
        span = ["--start", "2026-11-01", "--end", "2026-11-03"]
        res = cli.invoke(main, ["pipelines", "backfill", "etl_daily", *span, *args])
        assert res.exit_code == 0, res.output
        assert "3 runs of etl_daily: 3 created, 0 kept already" in res.stdout
        res = cli.invoke(main, ["pipelines", "backfill", "etl_daily", *span, *args])
        assert "0 created, 3 kept already" in res.stdout
        res = cli.invoke(main, ["pipelines", "list", *args, "--json"])
        assert res.exit_code == 0, res.output
        assert json.loads(res.stdout) == [{"name": "etl_daily", "steps": ["extract", "check"]}]
        res = cli.invoke(main, ["pipelines", "runs", "etl_daily", "--broker", url, "--json"])
        runs = json.loads(res.stdout)
        assert [r["key"] for r in runs] == [f"etl_daily:2026-11-0{d}" for d in (3, 2, 1)]
        run_id = runs[0]["id"]
        res = cli.invoke(main, ["pipelines", "cancel", run_id, "--broker", url])
        assert res.exit_code == 0, res.output
        assert json.loads(res.stdout)["state"] == "cancelled"
        res = cli.invoke(main, ["pipelines", "retry", run_id, "--broker", url])
        shown = json.loads(res.stdout)
        assert shown["state"] == "running"
        assert [s["state"] for s in shown["steps"]] == ["queued", "scheduled"]
        res = cli.invoke(main, ["pipelines", "show", "nope", "--broker", url])
        assert res.exit_code != 0 and "no pipeline run nope" in res.output
        res = cli.invoke(main, ["pipelines", "backfill", "nope", *span, *args])
        assert res.exit_code != 0 and "declares no pipeline 'nope'" in res.output
    finally:
        sys.modules.pop("pl_cli_app", None)
