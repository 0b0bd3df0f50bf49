"""``/api/v1``: every route's happy path, its refusals (problem+json, and the store unchanged),
tokens (none, wrong, read-only), cross-site requests and tokens in the query string."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

import faena
from faena.core.job import NewJob
from faena.core.runs import NewRun, NewStep
from faena.web.app import create_app

ADMIN = "adm1n-t0ken"
READ = "r3ad-t0ken"
AS_ADMIN = {"Authorization": f"Bearer {ADMIN}"}
AS_READER = {"Authorization": f"Bearer {READ}"}
PROBLEM = "application/problem+json"


def seed_run() -> NewRun:
    """A run of two steps (the second waits for the first), for the pipeline routes."""
    first = NewStep("extract", NewJob("seed.step", "q1"))
    second = NewStep("load", NewJob("seed.step", "q1"), ("extract",))
    return NewRun("etl_daily", "etl_daily:seed", "{}", (first, second))


class Served:
    def __init__(self, app: faena.App, client: TestClient) -> None:
        self.app = app
        self.client = client
        self.job_id = app.enqueue("seed.task", [1], queue="q1").id
        self.run_id = app.broker.create_run(seed_run()).id

    def store(self) -> Any:
        """What a refused request must leave as it was."""
        broker = self.app.broker
        jobs = [(j.id, j.state, j.queue, j.attempt, j.cancel_requested) for j in broker.list_jobs()]
        return jobs, broker.pool_stats(), broker.paused_queues()

    def routes(self) -> list[tuple[str, str, Any]]:
        """Every route: (method, path, JSON body)."""
        jid = self.job_id
        return [
            ("GET", "/api/v1/jobs", None),
            ("POST", "/api/v1/jobs", {"task": "t.a", "args": [1]}),
            ("GET", f"/api/v1/jobs/{jid}", None),
            ("POST", f"/api/v1/jobs/{jid}/retry", None),
            ("POST", f"/api/v1/jobs/{jid}/cancel", None),
            ("GET", "/api/v1/queues", None),
            ("GET", "/api/v1/pools", None),
            ("PUT", "/api/v1/pools/extra", {"size": 2}),
            ("POST", "/api/v1/queues/q1/pause", None),
            ("POST", "/api/v1/queues/q1/resume", None),
            ("GET", "/api/v1/workers", None),
            ("GET", "/api/v1/stats", None),
            ("GET", "/api/v1/autoscaler", None),
            ("POST", "/api/v1/bulk/retry", {"queue": "q1"}),
            ("POST", "/api/v1/bulk/cancel", {"queue": "q1"}),
            ("GET", "/api/v1/pipelines", None),
            ("GET", "/api/v1/pipelines/etl_daily/runs", None),
            ("GET", f"/api/v1/pipeline-runs/{self.run_id}", None),
            ("POST", f"/api/v1/pipeline-runs/{self.run_id}/retry", None),
            ("POST", f"/api/v1/pipeline-runs/{self.run_id}/cancel", None),
        ]

    def call(self, method: str, path: str, body: Any = None, **headers: str) -> Any:
        return self.client.request(method, path, json=body, headers=headers)


def _served(tmp_path: Path, **auth: Any) -> Iterator[Served]:
    app = faena.App(broker=f"sqlite:///{tmp_path / 'api.db'}")
    app.broker.setup()
    client = TestClient(create_app(app, **auth), raise_server_exceptions=False)
    yield Served(app, client)
    app.close()


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    yield from _served(tmp_path, admin_token=ADMIN, read_token=READ)


def assert_problem(answer: Any, status: int, error: str) -> dict[str, Any]:
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == PROBLEM
    body: dict[str, Any] = answer.json()
    assert (body["status"], body["error"]) == (status, error)
    assert body["type"] == f"urn:faena:problem:{error}"
    assert body["title"] and body["detail"] == body["message"]
    return body


ROUTE_IDS = [
    "list", "enqueue", "show", "retry", "cancel", "queues", "pools", "resize", "pause", "resume",
    "workers", "stats", "autoscaler", "bulk-retry", "bulk-cancel", "pipelines", "runs", "run",
    "run-retry", "run-cancel",
]  # fmt: skip
#: the routes that change something
MUTATING = ["enqueue", "retry", "cancel", "resize", "pause", "resume", "bulk-retry",
            "bulk-cancel", "run-retry", "run-cancel"]  # fmt: skip


def test_the_route_ids_name_every_route(served: Served) -> None:
    routes = served.routes()
    assert len(routes) == len(ROUTE_IDS)
    assert {i for i, (m, _, _) in enumerate(routes) if m != "GET"} == {
        ROUTE_IDS.index(n) for n in MUTATING
    }


@pytest.mark.parametrize("route", range(len(ROUTE_IDS)), ids=ROUTE_IDS)
@pytest.mark.parametrize("header", [None, "Bearer wrong", "Basic YTpi", f"bearer {ADMIN}x"])
def test_no_token_or_a_wrong_one_is_401_on_every_route(
    served: Served, route: int, header: str | None
) -> None:
    before = served.store()
    method, path, body = served.routes()[route]
    headers = {"Authorization": header} if header else {}
    problem = assert_problem(served.call(method, path, body, **headers), 401, "unauthorized")
    assert "Authorization: Bearer" in problem["detail"]
    assert served.store() == before


@pytest.mark.parametrize("route", range(len(ROUTE_IDS)), ids=ROUTE_IDS)
def test_the_read_token_reads_and_may_not_change_anything(served: Served, route: int) -> None:
    before = served.store()
    method, path, body = served.routes()[route]
    answer = served.call(method, path, body, **AS_READER)
    if method == "GET":
        assert answer.status_code == 200, answer.text
    else:
        assert "admin token" in assert_problem(answer, 403, "forbidden")["detail"]
    assert served.store() == before


@pytest.mark.parametrize("route", range(len(ROUTE_IDS)), ids=ROUTE_IDS)
@pytest.mark.parametrize("query", ["token=" + ADMIN, "access_token=x", "limit=5&api_key=x"])
def test_a_token_in_the_query_string_is_refused_on_every_route(
    served: Served, route: int, query: str
) -> None:
    before = served.store()
    method, path, body = served.routes()[route]
    answer = served.call(method, f"{path}?{query}", body, **AS_ADMIN)
    assert "Authorization: Bearer" in assert_problem(answer, 400, "token_in_query")["detail"]
    assert served.store() == before


@pytest.mark.parametrize(
    "route",
    [ROUTE_IDS.index(name) for name in MUTATING],
    ids=MUTATING,
)
@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "https://evil.example"},
        {"Origin": "null"},
        {"Origin": "http://testserver:8080"},
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site", "Origin": "http://testserver"},
    ],
)
def test_a_cross_site_browser_request_may_not_change_anything(
    served: Served, route: int, headers: dict[str, str]
) -> None:
    before = served.store()
    method, path, body = served.routes()[route]
    answer = served.call(method, path, body, **AS_ADMIN, **headers)
    assert "another site" in assert_problem(answer, 403, "cross_site")["detail"]
    assert served.store() == before


def test_a_same_origin_browser_request_is_served(served: Served) -> None:
    same = {"Origin": "http://testserver", "Sec-Fetch-Site": "same-origin"}
    answer = served.call("POST", "/api/v1/jobs", {"task": "t.a"}, **AS_ADMIN, **same)
    assert answer.status_code == 201, answer.text
    answer = served.call(
        "POST", "/api/v1/jobs", {"task": "t.a"}, **AS_ADMIN, Origin="http://testserver:80"
    )
    assert answer.status_code == 201, answer.text


def test_without_tokens_reads_are_open_and_changes_refused(tmp_path: Path) -> None:
    for served in _served(tmp_path):
        before = served.store()
        for method, path, body in served.routes():
            answer = served.call(method, path, body)
            if method == "GET":
                assert answer.status_code == 200, answer.text
            else:
                problem = assert_problem(answer, 403, "forbidden")
                assert (
                    "--admin-token-file" in problem["detail"] and "--no-auth" in problem["detail"]
                )
        assert served.store() == before


def test_no_auth_opens_the_changes_but_still_refuses_cross_site(tmp_path: Path) -> None:
    for served in _served(tmp_path, no_auth=True):
        answer = served.call("POST", "/api/v1/jobs", {"task": "t.a"}, Origin="https://evil.example")
        assert_problem(answer, 403, "cross_site")
        assert served.call("POST", "/api/v1/jobs", {"task": "t.a"}).status_code == 201


def test_the_older_token_is_an_admin_token(tmp_path: Path) -> None:
    for served in _served(tmp_path, token="old"):
        answer = served.call("PUT", "/api/v1/pools/p", {"size": 1}, Authorization="Bearer old")
        assert answer.status_code == 200, answer.text
        assert served.call("GET", "/openapi.json").status_code == 401  # the token guards it


def test_the_read_token_reads_the_other_routes_but_not_healthz_only(served: Served) -> None:
    assert served.call("GET", "/readyz").status_code == 401
    assert served.call("GET", "/readyz", **AS_READER).status_code == 200
    assert served.call("GET", "/openapi.json", **AS_READER).status_code == 200
    assert served.call("GET", "/healthz").status_code == 200
    # the read token is no password for the Camunda routes, which change jobs
    answer = served.client.get("/engine-rest/external-task/count", auth=("u", READ))
    assert answer.status_code == 401
    answer = served.client.get("/engine-rest/external-task/count", auth=("u", ADMIN))
    assert answer.status_code == 200


def test_changes_and_refusals_are_logged_without_the_token(
    served: Served, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO", logger="faena.server.api")
    made = served.call("POST", "/api/v1/jobs", {"task": "t.log"}, **AS_ADMIN).json()
    served.call("POST", f"/api/v1/jobs/{made['id']}/cancel", **AS_ADMIN)
    served.call("POST", f"/api/v1/jobs/{made['id']}/retry", **AS_ADMIN)
    served.call("PUT", "/api/v1/pools/logged", {"size": 3}, **AS_ADMIN)
    served.call("POST", "/api/v1/queues/logged/pause", **AS_ADMIN)
    served.call("POST", "/api/v1/queues/logged/resume", **AS_ADMIN)
    served.call("POST", "/api/v1/jobs", {"task": "t.log"}, **AS_READER)
    served.call("GET", f"/api/v1/jobs?token={ADMIN}")
    events = [
        (
            r.__dict__["event"],
            r.__dict__.get("job_id") or r.__dict__.get("status") or r.__dict__.get("queue"),
        )
        for r in caplog.records
        if r.name == "faena.server.api"  # other faena loggers may be at INFO after other tests
    ]
    assert events == [
        ("api.job_enqueued", made["id"]),
        ("api.job_cancelled", made["id"]),
        ("api.job_retried", made["id"]),
        ("api.pool_resized", None),
        ("api.queue_paused", "logged"),
        ("api.queue_resumed", "logged"),
        ("api.refused", 403),
        ("api.refused", 400),
    ]
    assert ADMIN not in caplog.text and READ not in caplog.text
