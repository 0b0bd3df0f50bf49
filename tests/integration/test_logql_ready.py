"""Real `faena worker` processes: every stdout line is one JSON object Loki's json stage
accepts, on every path (enqueue, claim, success, retry, dead, timeout, faena's own errors,
lease expiry after a SIGKILL, graceful shutdown with release), and the seed's LogQL selects
exactly the lines it should."""

from __future__ import annotations

import json
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from tests.integration.test_metrics_support import (
    env_for,
    python,
    start_worker,
    stop_worker,
    wait_for,
    write_app,
)
from tests.loki_json import json_labels, run

pytestmark = pytest.mark.slow
STREAM = {"namespace": "data", "pod": "faena-worker-7d9f-abc12", "container": "worker"}
BASE_FIELDS = ("timestamp", "level", "logger", "event", "message")
JOB_FIELDS = ("job_id", "task", "queue", "status")

PRODUCER = """
import json, sys
import {module} as m
from faena.observability import logs
logs.configure("json", "DEBUG")
logs.attach_event_logging(m.app.events)
ids = {{}}
ids["load"] = [m.app.enqueue("etl.load", [t]).id for t in ("users", "orders")]
ids["flaky"] = m.app.enqueue("etl.flaky", ["events"]).id
ids["check"] = m.app.enqueue("dq.check", ["users"], {{"ok": False}}).id
ids["stuck"] = m.app.enqueue("etl.stuck").id
ids["unknown"] = m.app.enqueue("reports.build", queue="dq").id
print(json.dumps(ids), file=sys.stderr)
"""


def read(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def events(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in read(path)]


def has(path: Path, pred: Callable[[dict[str, Any]], bool]) -> Callable[[], bool]:
    def check() -> bool:
        try:
            return any(pred(e) for e in events(path))
        except json.JSONDecodeError:
            return False  # a line being written

    return check


def enqueue_one(folder: Path, broker: str, module: str, task: str, args: list[Any]) -> str:
    code = f"import {module} as m; print(m.app.enqueue({task!r}, {args!r}).id)"
    out = subprocess.run(
        [python(), "-c", code], cwd=folder, env=env_for(folder, broker),
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return out.stdout.strip()


def test_every_line_is_logql_ready(tmp_path: Path) -> None:
    app_path = write_app(tmp_path)
    module = app_path.split(":")[0]
    broker = f"sqlite:///{tmp_path / 'faena.db'}"
    env = env_for(tmp_path, broker)

    # producer: job.enqueued lines
    prod = subprocess.run(
        [python(), "-c", PRODUCER.format(module=module)],
        cwd=tmp_path, env=env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    (tmp_path / "producer.log").write_text(prod.stdout)
    ids = json.loads(prod.stderr.strip().splitlines()[-1])

    # worker A: claims, successes, a retry, dead jobs, a timeout, an unknown task
    a_log = tmp_path / "worker-a.log"
    common = ["--queues", "etl_pool,dq", "--concurrency", "4", "--log-level", "DEBUG"]
    with a_log.open("w") as out:
        a = start_worker(tmp_path, app_path, broker, *common, "--lease", "1", stdout=out)
    try:
        terminal = {ids["check"], ids["stuck"], ids["unknown"], *ids["load"], ids["flaky"]}

        def all_done() -> bool:
            done = {e.get("job_id") for e in events(a_log)
                    if e["event"] in ("job.succeeded", "job.dead")}  # fmt: skip
            return terminal <= done

        wait_for(all_done, 30, "worker A to finish the first jobs")
        # a job that loses its worker: SIGKILL A while it runs
        long_id = enqueue_one(tmp_path, broker, module, "etl.long", [30])
        claimed = has(a_log, lambda e: e["event"] == "job.claimed" and e["job_id"] == long_id)
        wait_for(claimed, 15, "worker A to claim the long job")
        a.send_signal(signal.SIGKILL)
        a.wait(10)
    finally:
        stop_worker(a)

    # worker B reaps the expired lease (lease.expired + job.dead WorkerLost), then is
    # stopped with a running job and a short grace: job.released
    b_log = tmp_path / "worker-b.log"
    with b_log.open("w") as out:
        b = start_worker(
            tmp_path, app_path, broker, *common, "--lease", "1", "--grace", "0.3", stdout=out
        )
    try:
        reaped = has(b_log, lambda e: e["event"] == "job.dead" and e.get("job_id") == long_id)
        wait_for(reaped, 20, "worker B to reap the dead worker's job")
        held_id = enqueue_one(tmp_path, broker, module, "etl.long", [30])
        held = has(b_log, lambda e: e["event"] == "job.claimed" and e["job_id"] == held_id)
        wait_for(held, 15, "worker B to claim a job")
    finally:
        stop_worker(b)
    assert b.returncode == 0

    logs = {p.name: read(p) for p in (tmp_path / "producer.log", a_log, b_log)}
    lines = [line for group in logs.values() for line in group]

    # 1. every line is one JSON object with the base fields; job lines with the job fields
    for line in lines:
        labels = json_labels(line, STREAM)
        assert "__error__" not in labels, line
        for key in BASE_FIELDS:
            assert labels.get(key), (key, line)
        if labels["event"].startswith(("job.", "lease.")):
            for key in JOB_FIELDS:
                assert labels.get(key), (key, line)
        if labels["event"] in ("job.failed", "job.timeout", "job.dead"):
            assert labels.get("error_type") and labels.get("error_message"), line
        if labels["event"] in ("job.succeeded", "job.failed", "job.timeout"):
            assert float(labels["duration_ms"]) >= 0, line
        assert "job_id" not in labels or labels.get("namespace") == "data"  # no clash

    seen = {json.loads(line)["event"] for line in lines}
    for event in ("job.enqueued", "job.claimed", "job.succeeded", "job.failed", "job.timeout",
                  "job.dead", "lease.expired", "job.released", "worker.started",
                  "worker.stopping", "worker.stopped"):  # fmt: skip
        assert event in seen, event

    # 2. the seed's queries select exactly the expected lines
    failed = run(lines, STREAM, '{namespace="data"} | json | status="failed"')
    assert isinstance(failed, list)
    assert {json.loads(x)["event"] for x in failed} == {"job.failed", "job.timeout"}
    assert sorted(json.loads(x)["job_id"] for x in failed) == sorted(
        [ids["flaky"], ids["check"], ids["stuck"], ids["unknown"]]
    )
    assert failed == [x for x in lines if json.loads(x).get("status") == "failed"]

    etl = run(lines, STREAM, '{namespace="data"} | json | queue="etl_pool"')
    assert etl == [x for x in lines if json.loads(x).get("queue") == "etl_pool"]
    assert len(etl) > 10
    count = run(lines, STREAM, 'count_over_time({namespace="data"} | json | queue="etl_pool" [1m])')
    assert count == len(etl)
    assert run(lines, STREAM, '{namespace="prod"} | json | queue="etl_pool"') == []

    dead = run(lines, STREAM, '{namespace="data"} | json | event="job.dead"')
    assert isinstance(dead, list)
    by_job = {json.loads(x)["job_id"]: json.loads(x)["error_type"] for x in dead}
    assert by_job == {
        ids["check"]: "ValueError",
        ids["stuck"]: "TimeoutError",
        ids["unknown"]: "UnknownTaskError",  # faena's own error, named and logged as JSON
        long_id: "WorkerLost",
    }
    retried = run(lines, STREAM, '{namespace="data"} | json | will_retry="true"')
    assert [json.loads(x)["job_id"] for x in retried] == [ids["flaky"]]
    released = run(lines, STREAM, '{namespace="data"} | json | event="job.released"')
    assert [json.loads(x)["job_id"] for x in released] == [held_id]
