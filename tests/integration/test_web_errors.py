"""Every error of ``faena server``'s own routes is JSON in faena's words: what was asked,
what is allowed or exists."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

import faena
from faena.web.app import create_app


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    app = faena.App(broker=f"sqlite:///{tmp_path / 'e.db'}")
    yield TestClient(create_app(app), raise_server_exceptions=False)
    app.close()


@pytest.mark.parametrize(
    ("query", "parameter", "fix"),
    [
        ("limit=abc", "limit", "valid integer"),
        ("limit=0", "limit", "greater than or equal to 1"),
        ("limit=1001", "limit", "less than or equal to 1000"),
        ("offset=-1", "offset", "greater than or equal to 0"),
        ("state=bogus", "state", "'scheduled', 'queued', 'running', 'succeeded', 'failed'"),
        ("stat=dead", "stat", "takes state, queue, task, limit, offset"),
    ],
)
def test_a_bad_query_parameter_is_a_400_problem_naming_it(
    client: TestClient, query: str, parameter: str, fix: str
) -> None:
    answer = client.get(f"/api/v1/jobs?{query}")
    assert answer.status_code == 400
    assert answer.headers["content-type"] == "application/problem+json"
    body = answer.json()
    assert (body["error"], body["status"], body["title"]) == (
        "invalid_parameter",
        400,
        "Bad Request",
    )
    assert body["type"] == "urn:faena:problem:invalid_parameter"
    [error] = body["errors"]
    assert (error["field"], error["value"]) == (parameter, query.split("=", 1)[1])
    assert fix in error["fix"]
    assert parameter in body["detail"] and body["detail"] == body["message"]


def test_unknown_routes_and_methods_answer_json(client: TestClient) -> None:
    answer = client.get("/api/v2/jobs")
    assert answer.status_code == 404
    assert answer.headers["content-type"] == "application/json"
    assert answer.json()["error"] == "not_found"
    assert "GET, POST /api/v1/jobs" in answer.json()["routes"]
    answer = client.post("/readyz")
    assert answer.status_code == 405
    assert answer.json()["allowed"] == ["GET", "HEAD"]
    assert answer.headers["allow"] == "GET, HEAD"
    answer = client.get("/api/v1/jobs/nope")
    assert (answer.status_code, answer.json()["error"]) == (404, "not_found")
    answer = client.get("/api/v1/nothing-here")
    assert (answer.status_code, answer.json()["error"]) == (404, "not_found")
    assert answer.headers["content-type"] == "application/problem+json"
    assert "/openapi.json" in answer.json()["detail"]


def test_a_wrong_method_on_the_api_is_a_405_problem(tmp_path: Path) -> None:
    app = faena.App(broker=f"sqlite:///{tmp_path / 'm.db'}")
    client = TestClient(create_app(app, no_auth=True), raise_server_exceptions=False)
    answer = client.delete("/api/v1/jobs")
    assert answer.status_code == 405
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.json()["error"] == "method_not_allowed"
    assert "GET" in answer.headers["allow"]
    app.close()


def test_a_broker_that_fails_is_a_503_with_its_message(tmp_path: Path) -> None:
    folder = tmp_path / "a-folder"
    folder.mkdir()
    app = faena.App(broker=f"sqlite:///{folder}")  # a folder is no database
    answer = TestClient(create_app(app), raise_server_exceptions=False).get("/api/v1/jobs")
    assert answer.status_code == 503
    assert answer.json()["error"] == "broker_unavailable"
    assert str(folder) in answer.json()["message"]


@pytest.mark.parametrize(
    ("path", "field"),
    [
        ("/api/v1/jobs?task=a%00b", "task"),
        ("/api/v1/jobs?queue=", "queue"),
        ("/api/v1/jobs/a%00b", "job id"),
    ],
)
def test_a_value_the_broker_refuses_is_a_400_naming_it(
    client: TestClient, path: str, field: str
) -> None:
    answer = client.get(path)
    assert answer.status_code == 400, answer.text
    body = answer.json()
    assert body["error"] in {"invalid_value", "invalid_parameter"}  # broker's check or schema's
    assert field in body["message"]
    assert client.get("/readyz").status_code == 200  # the server and its store are fine
