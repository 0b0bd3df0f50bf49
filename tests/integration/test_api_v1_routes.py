"""``/api/v1`` routes with the admin token: what each does, and each refusal of bad input is a
``problem+json`` 4xx that leaves the store as it was."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient
from tests.contract.conftest import BACKENDS
from tests.integration.test_api_v1 import ADMIN, AS_ADMIN, Served, assert_problem

import faena
from faena.brokers.protocol import AutoscalerMetric, AutoscalerReport, Broker, WorkerReport
from faena.core.clock import ManualClock
from faena.web.app import create_app


def _served(tmp_path: Path, app: faena.App, **options: Any) -> Iterator[Served]:
    app.broker.setup()
    asgi = create_app(app, admin_token=ADMIN, **options)
    client = TestClient(asgi, raise_server_exceptions=False, headers=AS_ADMIN)
    yield Served(app, client)
    app.close()


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    yield from _served(tmp_path, faena.App(broker=f"sqlite:///{tmp_path / 'r.db'}"))


@pytest.fixture
def with_tasks(tmp_path: Path) -> Iterator[Served]:
    app = faena.App(broker=f"sqlite:///{tmp_path / 't.db'}")

    @app.task(name="mail.send", queue="mail", priority=5)
    def send(to: str, urgent: bool = False) -> None: ...

    yield from _served(tmp_path, app)


@pytest.mark.parametrize("name", list(BACKENDS))
def test_every_route_on_every_backend(tmp_path: Path, name: str) -> None:
    backend = BACKENDS[name](tmp_path)
    broker: Broker = backend.open(ManualClock())
    app = faena.App(broker=broker)
    for served in _served(tmp_path, app):
        try:
            c = served.client
            made = c.post("/api/v1/jobs", json={"task": "t.a", "args": [1], "kwargs": {"k": "v"}})
            assert made.status_code == 201, made.text
            job = made.json()
            assert made.headers["location"] == f"/api/v1/jobs/{job['id']}"
            assert (job["task"], job["args"], job["kwargs"], job["state"]) == (
                "t.a",
                [1],
                {"k": "v"},
                "queued",
            )
            shown = c.get(f"/api/v1/jobs/{job['id']}").json()
            assert shown.pop("attempts") == []  # only the one-job read has the history
            assert job.pop("attempts") is None
            assert shown == job
            listed = c.get("/api/v1/jobs", params={"task": "t.a"}).json()["jobs"]
            assert [j["id"] for j in listed] == [job["id"]]
            queues = c.get("/api/v1/queues").json()["queues"]
            assert {"queue": "default", "waiting": 1} in [
                {"queue": q["queue"], "waiting": q["waiting"]} for q in queues
            ]
            cancelled = c.post(f"/api/v1/jobs/{job['id']}/cancel")
            assert cancelled.json()["state"] == "cancelled", cancelled.text
            retried = c.post(f"/api/v1/jobs/{job['id']}/retry")
            assert retried.json()["state"] == "queued", retried.text
            resized = c.put("/api/v1/pools/extra", json={"size": 7})
            assert resized.json() == {"pool": "extra", "size": 7, "used": 0}
            pools = c.get("/api/v1/pools").json()["pools"]
            assert {"pool": "extra", "size": 7, "used": 0} in pools
            paused = c.post("/api/v1/queues/default/pause")
            assert paused.json() == {"queue": "default", "paused": True, "changed": True}
            again = c.post("/api/v1/queues/default/pause")
            assert again.json() == {"queue": "default", "paused": True, "changed": False}
            c.post("/api/v1/queues/idle/pause")  # a queue without jobs is listed once paused
            listed_q = {q["queue"]: q for q in c.get("/api/v1/queues").json()["queues"]}
            assert listed_q["default"]["paused"] and listed_q["default"]["waiting"] == 1
            assert listed_q["idle"] == {
                "queue": "idle", "waiting": 0, "scheduled": 0, "running": 0,
                "oldest_age": 0.0, "paused": True,
            }  # fmt: skip
            resumed = c.post("/api/v1/queues/default/resume")
            assert resumed.json() == {"queue": "default", "paused": False, "changed": True}
            assert c.post("/api/v1/queues/default/resume").json()["changed"] is False
            listed_q = {q["queue"]: q for q in c.get("/api/v1/queues").json()["queues"]}
            assert listed_q["default"]["paused"] is False
            broker.report_worker(
                WorkerReport(
                    id="h:1:w", host="h", pid=1, queues=("default",), concurrency=4,
                    version="9.9", started_at=1.0,
                )
            )  # fmt: skip
            workers = c.get("/api/v1/workers").json()["workers"]
            assert [(w["id"], w["host"], w["pid"], w["queues"], w["state"]) for w in workers] == [
                ("h:1:w", "h", 1, ["default"], "running")
            ]
            assert c.get("/api/v1/autoscaler").json() == {"autoscalers": []}
            broker.report_autoscaler(
                AutoscalerReport(
                    name="etl", host="h", pid=2, desired=4, current=2, min_replicas=1,
                    max_replicas=8, reason="ScaleUpLimit", metric_desired=6,
                    limited_by="scaleUp policy Pods 2 per 15s",
                    metrics=(AutoscalerMetric("External/celery_queue_length", "30", "10", 6),),
                    last_scale_at=5.0, stale_after=45.0,
                )
            )  # fmt: skip
            [scaler] = c.get("/api/v1/autoscaler").json()["autoscalers"]
            assert scaler.pop("updated_at") > 0
            assert scaler == {
                "name": "etl", "host": "h", "pid": 2, "desired": 4, "current": 2,
                "min_replicas": 1, "max_replicas": 8, "metric_desired": 6,
                "reason": "ScaleUpLimit", "limited_by": "scaleUp policy Pods 2 per 15s",
                "metrics": [{"metric": "External/celery_queue_length", "current": "30",
                             "target": "10", "proposal": 6, "error": None}],
                "last_scale_at": 5.0, "stale": False, "stale_after": 45.0,
            }  # fmt: skip
        finally:
            destroy = getattr(broker, "destroy", None)
            if callable(destroy):
                destroy()  # before the app closes the broker


def test_enqueue_takes_queue_priority_delay_and_an_idempotency_key(served: Served) -> None:
    body = {"task": "t.b", "queue": "q9", "priority": 3, "delay": 3600, "idempotency_key": "k1"}
    first = served.client.post("/api/v1/jobs", json=body).json()
    assert (first["queue"], first["priority"], first["state"]) == ("q9", 3, "scheduled")
    assert first["run_at"] >= first["enqueued_at"] + 3599
    again = served.client.post("/api/v1/jobs", json=body)
    assert again.json()["id"] == first["id"]  # the key is taken: the same job
    assert len(served.app.broker.list_jobs(task="t.b")) == 1


def test_enqueue_by_name_uses_the_tasks_options_and_checks_the_arguments(
    with_tasks: Served,
) -> None:
    c = with_tasks.client
    job = c.post("/api/v1/jobs", json={"task": "send", "args": ["ada@example.com"]}).json()
    assert (job["task"], job["queue"], job["priority"]) == ("mail.send", "mail", 5)
    before = with_tasks.store()
    unknown = assert_problem(c.post("/api/v1/jobs", json={"task": "nope"}), 400, "unknown_task")
    assert "mail.send" in unknown["detail"]
    wrong = c.post("/api/v1/jobs", json={"task": "mail.send", "kwargs": {"cc": "x"}})
    assert (
        "missing a required argument: 'to'" in assert_problem(wrong, 400, "invalid_value")["detail"]
    )
    assert with_tasks.store() == before


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "task"),
        ({"task": ""}, "task"),
        ({"task": 5}, "task"),
        ({"task": "t", "args": {"a": 1}}, "args"),
        ({"task": "t", "kwargs": [1]}, "kwargs"),
        ({"task": "t", "priority": "3"}, "priority"),
        ({"task": "t", "priority": 2**31}, "priority"),
        ({"task": "t", "priority": True}, "priority"),
        ({"task": "t", "delay": -1}, "delay"),
        ({"task": "t", "queue": ""}, "queue"),
        ({"task": "t", "idempotency_key": ""}, "idempotency_key"),
        ({"task": "t", "retries": 3}, "retries"),
        ([1, 2], "body"),
    ],
)
def test_bad_enqueue_bodies_are_400_naming_the_field(served: Served, body: Any, field: str) -> None:
    before = served.store()
    problem = assert_problem(served.client.post("/api/v1/jobs", json=body), 400, "invalid_body")
    assert field in [e["field"] for e in problem["errors"]], problem
    assert all(e["fix"] for e in problem["errors"])
    assert served.store() == before


@pytest.mark.parametrize(
    ("raw", "says"),
    [
        (b'{"task": ', "not valid JSON"),
        (b'{"task": "t", "args": [NaN]}', "NaN is not a JSON number"),
        (b'{"task": "t", "args": [1e400]}', "too large"),
        (b'{"task": "\\ud800"}', "lone UTF-16 surrogate"),
        (b"[" * 100 + b"]" * 100, "nested deeper"),
    ],
)
def test_malformed_json_is_400_before_anything_runs(served: Served, raw: bytes, says: str) -> None:
    before = served.store()
    answer = served.client.post(
        "/api/v1/jobs", content=raw, headers={"Content-Type": "application/json"}
    )
    assert says in assert_problem(answer, 400, "invalid_body")["detail"]
    assert served.store() == before


def test_a_body_not_sent_as_json_says_so(served: Served) -> None:
    before = served.store()
    answer = served.client.post(
        "/api/v1/jobs", content=b'{"task": "t"}', headers={"Content-Type": "text/plain"}
    )
    [error] = assert_problem(answer, 400, "invalid_body")["errors"]
    assert error["value"] == '{"task": "t"}' and "Content-Type: application/json" in error["fix"]
    assert served.store() == before


def test_a_body_past_the_limit_is_413(tmp_path: Path) -> None:
    app = faena.App(broker=f"sqlite:///{tmp_path / 'b.db'}")
    for served in _served(tmp_path, app, max_body_bytes=100):
        before = served.store()
        answer = served.client.post("/api/v1/jobs", json={"task": "t", "args": ["x" * 200]})
        assert "100 bytes" in assert_problem(answer, 413, "body_too_large")["detail"]
        assert served.store() == before


def test_values_the_store_refuses_are_400(served: Served) -> None:
    before = served.store()
    c = served.client
    answer = c.post("/api/v1/jobs", json={"task": "t", "queue": "a b"})
    assert assert_problem(answer, 400, "invalid_value")["errors"][0]["field"] == "queue"
    assert_problem(c.post("/api/v1/jobs", json={"task": "t\u0000x"}), 400, "invalid_value")
    assert_problem(c.get("/api/v1/jobs/a%00b"), 400, "invalid_value")
    assert served.store() == before


@pytest.mark.parametrize("action", ["", "/retry", "/cancel"])
def test_an_unknown_job_is_404(served: Served, action: str) -> None:
    before = served.store()
    method = "GET" if not action else "POST"
    answer = served.client.request(method, f"/api/v1/jobs/nope{action}")
    assert "'nope'" in assert_problem(answer, 404, "not_found")["detail"]
    assert served.store() == before


def test_retrying_a_queued_job_or_cancelling_a_cancelled_one_is_409(served: Served) -> None:
    c, jid = served.client, served.job_id
    before = served.store()
    assert (
        "only dead or cancelled"
        in assert_problem(c.post(f"/api/v1/jobs/{jid}/retry"), 409, "conflict")["detail"]
    )
    assert served.store() == before
    assert c.post(f"/api/v1/jobs/{jid}/cancel").status_code == 200
    before = served.store()
    assert_problem(c.post(f"/api/v1/jobs/{jid}/cancel"), 409, "conflict")
    assert served.store() == before


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/api/v1/pools/p", {"size": -1}),
        ("/api/v1/pools/p", {"size": "3"}),
        ("/api/v1/pools/p", {"size": 1.5}),
        ("/api/v1/pools/p", {}),
        ("/api/v1/pools/p", {"size": 1, "slots": 2}),
        ("/api/v1/pools/a%20b", {"size": 1}),
        ("/api/v1/pools/" + "p" * 65, {"size": 1}),
    ],
)
def test_bad_pool_resizes_are_400(served: Served, path: str, body: Any) -> None:
    before = served.store()
    answer = served.client.put(path, json=body)
    assert answer.status_code == 400, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.json()["errors"]
    assert served.store() == before


def test_the_listing_pages_with_limit_and_next_offset(served: Served) -> None:
    seed_run = served.app.broker.get_run(served.run_id)
    assert seed_run is not None  # its steps are jobs too
    ids = {served.job_id} | {s.job_id for s in seed_run.steps}
    ids |= {served.app.enqueue("t.c", [i]).id for i in range(4)}
    seen: list[str] = []
    offset: int | None = 0
    while offset is not None:
        page = served.client.get("/api/v1/jobs", params={"limit": 2, "offset": offset}).json()
        assert page["limit"] == 2 and len(page["jobs"]) <= 2
        seen += [j["id"] for j in page["jobs"]]
        offset = page["next_offset"]
    assert sorted(seen) == sorted(ids)  # each job once
    state = served.client.get("/api/v1/jobs", params={"state": "queued", "task": "t.c"}).json()
    assert len(state["jobs"]) == 4


def test_the_openapi_document_is_3_1_with_the_full_paths(served: Served) -> None:
    doc = served.client.get("/openapi.json").json()
    assert doc["openapi"].startswith("3.1")
    assert set(doc["paths"]) == {
        "/api/v1/jobs",
        "/api/v1/jobs/{job_id}",
        "/api/v1/jobs/{job_id}/retry",
        "/api/v1/jobs/{job_id}/cancel",
        "/api/v1/queues",
        "/api/v1/stats",
        "/api/v1/pools",
        "/api/v1/pools/{pool}",
        "/api/v1/queues/{queue}/pause",
        "/api/v1/queues/{queue}/resume",
        "/api/v1/workers",
        "/api/v1/autoscaler",
        "/api/v1/bulk/retry",
        "/api/v1/bulk/cancel",
        "/api/v1/pipelines",
        "/api/v1/pipelines/{name}/runs",
        "/api/v1/pipeline-runs/{run_id}",
        "/api/v1/pipeline-runs/{run_id}/retry",
        "/api/v1/pipeline-runs/{run_id}/cancel",
    }
    assert doc["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    for operations in doc["paths"].values():
        for operation in operations.values():
            assert "422" not in operation["responses"]
            assert "application/problem+json" in operation["responses"]["400"]["content"]
    enqueue = doc["components"]["schemas"]["EnqueueRequest"]
    assert enqueue["required"] == ["task"] and enqueue["additionalProperties"] is False


@pytest.mark.parametrize(
    "path", ["/api/v1/queues/a%20b/pause", "/api/v1/queues/" + "q" * 65 + "/resume"]
)
def test_bad_queue_names_are_400(served: Served, path: str) -> None:
    before = served.store()
    assert_problem(served.client.post(path), 400, "invalid_parameter")
    assert served.store() == before


def test_an_autoscaler_silent_past_stale_after_is_shown_stale(tmp_path: Path) -> None:
    clock = ManualClock()
    app = faena.App(broker=f"sqlite:///{tmp_path / 'a.db'}", clock=clock)
    for served in _served(tmp_path, app):
        app.broker.report_autoscaler(
            AutoscalerReport(
                name="etl", host="h", pid=2, desired=1, current=1, min_replicas=1,
                max_replicas=4, reason="Starting", stale_after=45.0,
            )
        )  # fmt: skip
        [live] = served.client.get("/api/v1/autoscaler").json()["autoscalers"]
        assert (live["stale"], live["updated_at"]) == (False, clock.now())
        clock.advance(46)
        [stale] = served.client.get("/api/v1/autoscaler").json()["autoscalers"]
        assert stale["stale"] is True and stale["metrics"] == [] and stale["limited_by"] is None


def test_pipeline_routes_list_show_cancel_and_retry_a_run(tmp_path: Path) -> None:
    app = faena.App(broker=f"sqlite:///{tmp_path / 'p.db'}")

    @app.task(name="etl.step", queue="etl")
    def step() -> None: ...

    from faena.pipelines import Pipeline

    etl = Pipeline(app, "etl_api", key="{day}")
    first = etl.step("extract", step)
    etl.step("load", step, after=first, rule="all_done")
    for served in _served(tmp_path, app):
        c = served.client
        declared = c.get("/api/v1/pipelines").json()
        assert declared == [
            {
                "name": "etl_api",
                "steps": [
                    {"name": "extract", "task": "etl.step", "upstreams": [], "rule": "all_success",
                     "results": False},
                    {"name": "load", "task": "etl.step", "upstreams": ["extract"],
                     "rule": "all_done", "results": False},
                ],
            }
        ]  # fmt: skip
        run = etl.run(day="2026-11-27")
        page = c.get("/api/v1/pipelines/etl_api/runs").json()
        assert [r["id"] for r in page["runs"]] == [run.id] and page["next_offset"] is None
        shown = c.get(f"/api/v1/pipeline-runs/{run.id}").json()
        assert shown["state"] == "running" and shown["key"] == "etl_api:2026-11-27"
        assert [s["state"] for s in shown["steps"]] == ["queued", "scheduled"]
        cancelled = c.post(f"/api/v1/pipeline-runs/{run.id}/cancel").json()
        assert cancelled["state"] == "cancelled"
        assert [s["state"] for s in cancelled["steps"]] == ["cancelled", "cancelled"]
        retried = c.post(f"/api/v1/pipeline-runs/{run.id}/retry").json()
        assert [s["state"] for s in retried["steps"]] == ["queued", "scheduled"]
        assert_problem(c.get("/api/v1/pipeline-runs/nope"), 404, "not_found")
        assert_problem(c.post("/api/v1/pipeline-runs/nope/retry"), 404, "not_found")
        assert_problem(c.get("/api/v1/pipelines/a%20b/runs"), 400, "invalid_parameter")
        bad = c.get("/api/v1/pipelines/etl_api/runs", params={"state": "x"})
        assert bad.status_code == 400
