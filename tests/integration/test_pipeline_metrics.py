"""Pipeline metrics read from the broker at scrape time, and the run start / end log events."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

import faena
from faena.brokers.memory import MemoryBroker
from faena.brokers.url import open_broker
from faena.core.clock import ManualClock
from faena.core.job import Outcome
from faena.core.states import JobState
from faena.errors import BrokerError
from faena.observability.metrics import broker_collector, new_registry, render
from faena.observability.metrics_pipelines import REPORT_WINDOW_SECONDS
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
    broker_collector(app.broker, registry=registry, clock=clock)
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


def _finished(caplog: pytest.LogCaptureFixture) -> list[tuple[str, str]]:
    return [
        (r.__dict__["run_id"], r.__dict__["status"])
        for r in caplog.records
        if r.__dict__.get("event") == "pipeline.run_finished"
    ]


def test_a_runs_end_is_logged_once_by_every_process_scraping_one_store(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Two servers (two brokers on one SQLite file, each its own registry) scrape the same
    store: the end is logged by one of them; a server started later does not repeat it; a
    run retried and ended again is logged again; an end seen an hour late is not logged."""
    clock = ManualClock()
    url = f"sqlite:///{tmp_path / 'faena.db'}"
    app = faena.App(broker=url, clock=clock)

    @app.task(queue="etl")
    def step() -> None: ...

    etl = Pipeline(app, "etl_daily", key="{day}")
    etl.step("extract", step)
    servers = []
    for _ in range(2):
        broker = open_broker(url, clock=clock)
        registry = new_registry(process=False)
        broker_collector(broker, registry=registry, clock=clock)
        servers.append((broker, registry))
    caplog.set_level(logging.INFO, logger="faena.pipelines")
    run = etl.run(day="2026-11-26")
    for _, registry in servers:
        _samples(registry)
    [job] = app.broker.claim("w", ["etl"], 1, 30).jobs
    clock.advance(4)
    app.broker.finish([Outcome(job.id, job.attempt, JobState.DEAD)])
    for _ in range(2):
        for _, registry in servers:
            _samples(registry)
    assert _finished(caplog) == [(run.id, "failed")]
    later = new_registry(process=False)  # a server started after the end
    broker_collector(open_broker(url, clock=clock), registry=later, clock=clock)
    _samples(later)
    assert _finished(caplog) == [(run.id, "failed")]
    app.broker.retry_run(run.id)
    [job] = app.broker.claim("w", ["etl"], 1, 30).jobs
    clock.advance(2)
    app.broker.finish([Outcome(job.id, job.attempt, JobState.SUCCEEDED, result_json="1")])
    _samples(later)
    _samples(servers[0][1])
    assert _finished(caplog) == [(run.id, "failed"), (run.id, "succeeded")]
    old = etl.run(day="2026-11-27")  # ends, and is first looked at more than an hour later
    [job] = app.broker.claim("w", ["etl"], 1, 30).jobs
    app.broker.finish([Outcome(job.id, job.attempt, JobState.SUCCEEDED, result_json="1")])
    clock.advance(REPORT_WINDOW_SECONDS + 1)
    for registry in (later, servers[0][1], servers[1][1]):
        _samples(registry)
    assert [r for r, _ in _finished(caplog)] == [run.id, run.id]
    stored = app.broker.get_run(old.id)
    assert stored is not None and stored.finished_at is not None
    assert app.broker.note_run_ended(old.id, stored.finished_at) is False  # noted, silently
    for broker, _ in servers:
        broker.close()


def test_a_store_that_fails_to_note_an_end_still_gives_the_metrics_and_logs_it_later(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = ManualClock()
    broker = MemoryBroker(clock=clock)
    app = faena.App(broker=broker, clock=clock)

    @app.task(queue="etl")
    def step() -> None: ...

    etl = Pipeline(app, "etl_daily", key="{day}")
    etl.step("extract", step)
    failing = [True]
    noted = broker.note_run_ended

    def note(run_id: str, finished_at: float) -> bool:
        if failing[0]:
            raise BrokerError("the store is away")
        return noted(run_id, finished_at)

    broker.note_run_ended = note  # type: ignore[method-assign]
    registry = new_registry(process=False)
    broker_collector(broker, registry=registry, clock=clock)
    caplog.set_level(logging.INFO, logger="faena.pipelines")
    run = etl.run(day="2026-11-26")
    [job] = broker.claim("w", ["etl"], 1, 30).jobs
    broker.finish([Outcome(job.id, job.attempt, JobState.SUCCEEDED, result_json="1")])
    got = _samples(registry)
    assert got[("faena_pipeline_runs", (("pipeline", "etl_daily"), ("state", "succeeded")))] == 1
    assert _finished(caplog) == []
    failing[0] = False
    _samples(registry)
    assert _finished(caplog) == [(run.id, "succeeded")]
