"""The real Camunda clients against a live ``faena server`` on SQLite and PostgreSQL.

Clients: the npm ``camunda-external-task-client-js`` 3.1.0 (examples/node-worker), the PyPI
``camunda-external-task-client-python3`` 4.5.0, and faena's own ``ExternalTaskClient``.
"""

from __future__ import annotations

import json
import signal
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.integration.test_camunda_support import (
    Server,
    broker_url,
    enqueue,
    http,
    running_server,
    start_worker,
    wait_for,
    wait_settled,
)

from faena.camunda.server.tasks import BPMN_ERROR, FAILURE
from faena.core.states import JobState

pytestmark = pytest.mark.slow

CLIENTS = [
    pytest.param("node", marks=pytest.mark.node),
    pytest.param("python3"),
    pytest.param("faena"),
]
BROKERS = [
    pytest.param("sqlite"),
    pytest.param("postgres", marks=pytest.mark.postgres),
]


@pytest.fixture(params=BROKERS)
def server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Server]:
    with running_server(broker_url(request.param, tmp_path), tmp_path) as srv:
        yield srv


OUTPUT = {"doubled": 6, "flag": True, "ratio": 1.5, "doc": {"items": [1, 2], "ok": True}}


@pytest.mark.parametrize("kind", CLIENTS)
def test_every_outcome(kind: str, server: Server, tmp_path: Path) -> None:
    app = server.app()
    ids = {m: enqueue(app, m, seconds=2.5) for m in ("ok", "flaky", "fatal", "bpmn", "slow")}
    worker = start_worker(kind, server, tmp_path, f"{kind}-w1", LOCK_MS="1200", MAX_TASKS="5")
    try:
        jobs = wait_settled(app, list(ids.values()), timeout=60)
    finally:
        worker.stop()
    log = worker.log.read_text()

    ok = jobs[ids["ok"]]
    assert ok.state is JobState.SUCCEEDED, log
    result = ok.result
    assert {k: result[k] for k in OUTPUT} == OUTPUT  # typed: Integer, Boolean, Double, Json
    assert result["label"] == f"done by {kind}-w1"

    flaky = jobs[ids["flaky"]]
    assert flaky.state is JobState.SUCCEEDED and flaky.tries == 3, log

    fatal = jobs[ids["fatal"]]
    assert fatal.state is JobState.DEAD and fatal.error is not None
    assert fatal.error.type == FAILURE and "fatal: cannot process" in fatal.error.message
    assert fatal.error.traceback  # errorDetails kept
    status, _, body = http("GET", f"{server.engine}/external-task/{ids['fatal']}")
    assert status == 200 and json.loads(body)["retries"] == 0
    status, _headers, details = http(
        "GET", f"{server.engine}/external-task/{ids['fatal']}/errorDetails"
    )
    assert status == 200 and details.decode() == fatal.error.traceback
    status, _, body = http("GET", f"{server.engine}/external-task/count?noRetriesLeft=true")
    assert json.loads(body) == {"count": 1}

    bpmn = jobs[ids["bpmn"]]
    assert bpmn.state is JobState.DEAD and bpmn.error is not None
    assert bpmn.error.type == BPMN_ERROR
    assert bpmn.result["errorCode"] == "NEG"
    assert bpmn.result["errorMessage"] == "negative amount"
    assert bpmn.result["variables"] == {"rejected": 3}
    assert http("GET", f"{server.engine}/external-task/{ids['bpmn']}")[0] == 404

    slow = jobs[ids["slow"]]
    assert slow.state is JobState.SUCCEEDED, log
    assert slow.tries == 1, f"the lock was not extended: {log}"  # 2.5 s of work, 1.2 s lock


@pytest.mark.parametrize("kind", CLIENTS)
def test_competing_workers_handle_each_task_once(kind: str, server: Server, tmp_path: Path) -> None:
    app = server.app()
    ids = [enqueue(app, "ok", n=i) for i in range(30)]
    handled = tmp_path / "handled.txt"
    workers = [
        start_worker(
            kind, server, tmp_path, f"{kind}-c{i}", HANDLED_LOG=str(handled), MAX_TASKS="3"
        )
        for i in range(2)
    ]
    try:
        jobs = wait_settled(app, ids, timeout=90)
    finally:
        for w in workers:
            w.stop()
    assert all(j.state is JobState.SUCCEEDED and j.tries == 1 for j in jobs.values())
    lines = [line.split() for line in handled.read_text().splitlines()]
    counts = Counter(task_id for task_id, _ in lines)
    assert set(counts) == set(ids)
    assert max(counts.values()) == 1, counts.most_common(3)


@pytest.mark.parametrize("kind", CLIENTS)
def test_lock_of_a_killed_client_expires(kind: str, server: Server, tmp_path: Path) -> None:
    app = server.app()
    job_id = enqueue(app, "hang")
    worker = start_worker(kind, server, tmp_path, f"{kind}-dies", LOCK_MS="2000")

    def locked_by_worker() -> bool:
        status, _, body = http("GET", f"{server.engine}/external-task/{job_id}")
        return status == 200 and json.loads(body)["workerId"] == f"{kind}-dies"

    wait_for(locked_by_worker, 30, "the worker to lock the task")
    worker.stop(signal.SIGKILL)
    started = time.monotonic()
    status, _, body = http(
        "POST",
        f"{server.engine}/external-task/fetchAndLock",
        {
            "workerId": "rescuer",
            "maxTasks": 1,
            "asyncResponseTimeout": 20000,
            "topics": [{"topicName": "process-order", "lockDuration": 10000}],
        },
    )
    assert status == 200
    tasks = json.loads(body)
    assert [t["id"] for t in tasks] == [job_id], tasks
    assert time.monotonic() - started < 20
    status, _, _ = http(
        "POST", f"{server.engine}/external-task/{job_id}/complete", {"workerId": "rescuer"}
    )
    assert status == 204


def test_a_second_signal_unlocks_at_once(server: Server, tmp_path: Path) -> None:
    """faena's client: the first SIGTERM drains for ``grace`` (60 s here), a second one
    unlocks the running task and exits without waiting for the rest of it."""
    app = server.app()
    job_id = enqueue(app, "hang")
    worker = start_worker("faena", server, tmp_path, "faena-twice", GRACE="60")

    def locked() -> bool:
        status, _, body = http("GET", f"{server.engine}/external-task/{job_id}")
        return status == 200 and json.loads(body)["workerId"] == "faena-twice"

    wait_for(locked, 30, "the worker to lock the task")
    worker.proc.send_signal(signal.SIGTERM)
    wait_for(lambda: '"worker.stopping"' in worker.log.read_text(), 10, "the drain to begin")
    worker.proc.send_signal(signal.SIGTERM)
    try:
        assert worker.proc.wait(20) == 0
    finally:
        worker.stop(signal.SIGKILL)
    log = worker.log.read_text()
    assert '"event": "job.released"' in log, log
    status, _, body = http("GET", f"{server.engine}/external-task/{job_id}")
    assert status == 200 and json.loads(body)["workerId"] is None, "unlocked for another worker"


def test_faena_s_client_rides_out_an_engine_restart(tmp_path: Path) -> None:
    """faena's client runs on the worker runtime: a report the engine cannot take (it is down)
    is kept and sent again after the runtime's back-off, once the engine is back, while the
    lock still holds; the outage is logged once, and its end."""
    broker = broker_url("sqlite", tmp_path)
    with running_server(broker, tmp_path) as first:
        port = int(first.url.rsplit(":", 1)[1])
        job_id = enqueue(first.app(), "slow", seconds=2.0)
        worker = start_worker("faena", first, tmp_path, "faena-outage", LOCK_MS="15000")

        def locked() -> bool:
            status, _, body = http("GET", f"{first.engine}/external-task/{job_id}")
            return status == 200 and json.loads(body)["workerId"] == "faena-outage"

        wait_for(locked, 30, "the worker to lock the task")
    try:  # the engine is down now: the handler ends meanwhile and its report fails
        wait_for(lambda: '"worker.broker_unavailable"' in worker.log.read_text(), 20, "the outage")
        with running_server(broker, tmp_path, port=port) as second:
            job = wait_settled(second.app(), [job_id], timeout=30)[job_id]
            assert job.state is JobState.SUCCEEDED, job
            wait_for(lambda: '"worker.broker_recovered"' in worker.log.read_text(), 20, "recovery")
            worker.stop()  # while the engine answers: the stop is not an outage
    finally:
        worker.stop()
    log = worker.log.read_text()
    assert log.count('"worker.broker_unavailable"') == 1, log


def test_the_docs_seed_example_runs_as_written(tmp_path: Path) -> None:
    """The first Python block of docs/camunda.md, with only the host changed."""
    import re
    import subprocess
    import sys

    from tests.integration.test_camunda_support import ROOT

    doc = (ROOT / "docs" / "camunda.md").read_text()
    source = re.search(r"```python\n(.*?)```", doc, re.S)
    assert source is not None
    with running_server(broker_url("sqlite", tmp_path), tmp_path) as srv:
        script = tmp_path / "seed_worker.py"
        script.write_text(source.group(1).replace("http://camunda:8080", srv.url))
        app = srv.app()
        good = app.enqueue("order", kwargs={"orderId": "1234", "amount": 5}, queue="process-order")
        bad = app.enqueue("order", kwargs={"orderId": "9", "amount": -1}, queue="process-order")
        proc = subprocess.Popen(
            [sys.executable, str(script)],
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        try:
            jobs = wait_settled(app, [good.id, bad.id], timeout=30)
        finally:
            proc.send_signal(signal.SIGTERM)
            out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out
    assert jobs[good.id].result == {"orderId": "1234", "processed": True}
    assert jobs[bad.id].result["errorCode"] == "NEGATIVE_AMOUNT"
    events = [json.loads(line)["event"] for line in out.decode().splitlines()]
    assert {"worker.started", "job.succeeded", "job.bpmn_error", "worker.stopped"} <= set(events)
