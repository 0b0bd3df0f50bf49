"""Pipeline metrics read from the broker at scrape time, and the run start / end log events."""

from __future__ import annotations

import logging

import pytest
from prometheus_client.parser import text_string_to_metric_families

import faena
from faena.brokers.memory import MemoryBroker
from faena.core.clock import ManualClock
from faena.core.job import Outcome
from faena.core.states import JobState
from faena.observability.metrics import broker_collector, new_registry, render
from faena.pipelines import Pipeline


def _samples(registry: object) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = render(registry).decode()  # type: ignore[arg-type]
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_runs_by_state_duration_wait_and_the_log_events(caplog: pytest.LogCaptureFixture) -> None:
    clock = ManualClock()
    app = faena.App(broker=MemoryBroker(clock=clock), clock=clock)

    @app.task(queue="etl")
    def step() -> None: ...

    etl = Pipeline(app, "etl_daily", key="{day}")
    first = etl.step("extract", step)
    etl.step("load", step, after=first)
    registry = new_registry(process=False)
    broker_collector(app.broker, registry=registry)
    caplog.set_level(logging.INFO, logger="faena.pipelines")
    done = etl.run(day="2026-11-26")
    assert [r.__dict__.get("event") for r in caplog.records] == ["pipeline.run_started"]
    started = caplog.records[0].__dict__
    assert (started["pipeline"], started["run_id"], started["status"]) == (
        "etl_daily",
        done.id,
        "running",
    )
    _samples(registry)  # the first scrape: nothing ended yet
    broker = app.broker
    for wait in (2.0, 3.0):
        clock.advance(wait)
        [job] = broker.claim("w", ["etl"], 1, 30).jobs
        clock.advance(10)
        broker.finish([Outcome(job.id, job.attempt, JobState.SUCCEEDED, result_json="1")])
    etl.run(day="2026-11-27")  # still running
    got = _samples(registry)
    assert got[("faena_pipeline_runs", (("pipeline", "etl_daily"), ("state", "succeeded")))] == 1
    assert got[("faena_pipeline_runs", (("pipeline", "etl_daily"), ("state", "running")))] == 1
    key = (("le", "+Inf"), ("pipeline", "etl_daily"))
    assert got[("faena_pipeline_run_duration_seconds_bucket", key)] == 1
    assert got[("faena_pipeline_run_duration_seconds_gsum", (("pipeline", "etl_daily"),))] == 25
    load = (("le", "5.0"), ("pipeline", "etl_daily"), ("step", "load"))
    assert got[("faena_pipeline_step_wait_seconds_bucket", load)] == 1
    finished = [
        r.__dict__ for r in caplog.records if r.__dict__.get("event") == "pipeline.run_finished"
    ]
    assert [(f["run_id"], f["status"], f["duration_s"]) for f in finished] == [
        (done.id, "succeeded", 25.0)
    ]
    _samples(registry)  # seen already: not logged again
    assert sum(r.__dict__.get("event") == "pipeline.run_finished" for r in caplog.records) == 1
