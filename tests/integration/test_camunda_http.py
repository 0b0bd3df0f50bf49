"""The ASGI app in process (memory broker): wire rules, long polling woken by the waker."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
from starlette.testclient import TestClient

import faena
from faena.web import create_app

FETCH = "/engine-rest/external-task/fetchAndLock"


@pytest.fixture
def app() -> faena.App:
    return faena.App(broker="memory://")


@pytest.fixture
def client(app: faena.App) -> Iterator[TestClient]:
    with TestClient(create_app(app)) as c:
        yield c


def body(timeout_ms: int | None = None) -> dict[str, object]:
    out: dict[str, object] = {
        "workerId": "w",
        "maxTasks": 2,
        "topics": [{"topicName": "t", "lockDuration": 5000}],
    }
    if timeout_ms is not None:
        out["asyncResponseTimeout"] = timeout_ms
    return out


def test_long_poll_wakes_on_enqueue(app: faena.App, client: TestClient) -> None:
    threading.Timer(0.3, lambda: app.enqueue("x", kwargs={"a": 1}, queue="t")).start()
    started = time.monotonic()
    response = client.post(FETCH, json=body(20_000))
    assert response.status_code == 200
    assert [t["variables"] for t in response.json()] == [
        {"a": {"type": "Integer", "value": 1, "valueInfo": {}}}
    ]
    assert time.monotonic() - started < 4  # woken, not the 5 s safety net


def test_long_poll_times_out_with_an_empty_list(client: TestClient) -> None:
    response = client.post(FETCH, json=body(300))
    assert (response.status_code, response.json()) == (200, [])
    assert response.headers["content-type"] == "application/json"


def test_void_answers_have_no_body_and_no_content_type(app: faena.App, client: TestClient) -> None:
    job = app.enqueue("x", queue="t")
    client.post(FETCH, json=body())
    response = client.post(f"/engine-rest/external-task/{job.id}/unlock")  # no body at all
    assert response.status_code == 204 and response.content == b""
    assert "content-type" not in response.headers


def test_jobs_api_and_health(app: faena.App, client: TestClient) -> None:
    job = app.enqueue("x", kwargs={"k": "v"}, queue="t")
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").status_code == 200
    listed = client.get("/api/v1/jobs", params={"queue": "t"}).json()["jobs"]
    assert [j["id"] for j in listed] == [job.id]
    assert client.get(f"/api/v1/jobs/{job.id}").json()["kwargs"] == {"k": "v"}
    assert client.get("/api/v1/jobs/nope").status_code == 404
    assert client.get("/api/v1/jobs", params={"state": "bogus"}).status_code == 400


def test_token_guards_all_but_healthz(app: faena.App) -> None:
    with TestClient(create_app(app, token="t0k")) as c:
        assert c.get("/healthz").status_code == 200
        assert c.get("/readyz").status_code == 401
        assert c.get("/api/v1/jobs", headers={"Authorization": "Bearer t0k"}).status_code == 200
        assert c.get("/engine-rest/external-task/count").status_code == 401
        ok = c.get("/engine-rest/external-task/count", auth=("anyone", "t0k"))
        assert ok.json() == {"count": 0}
        # a path that only starts like the Camunda mount is not under it: the token guards it
        assert c.get("/engine-restX").status_code == 401
        assert c.get("/engine-rest-other/x").status_code == 401
