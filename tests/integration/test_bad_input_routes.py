"""Bad input and auth on every route of ``faena server``, the routes read from the app itself:
``/openapi.json`` for ``/api/v1`` (FastAPI), the Starlette route table for the rest
(``/engine-rest`` included). A route added later is covered without editing this file; a
mount this file cannot read fails :func:`test_every_mount_is_read`.

* every route that takes a body: 10,000 levels of arrays or objects -> ``400`` naming the limit
  and the fix; a body over the limit -> ``413``; the store unchanged; the server still answers;
* auth: no token, wrong tokens (hypothesis, bounded), the read-only token on mutating methods,
  the admin token in the query string, a Basic scheme on the Bearer routes -> 401/403 (400
  for a token in ``/api/v1``'s query string), never 2xx or 5xx; cross-site requests to every
  mutating ``/api/v1`` route refused with the admin token; the store unchanged after it all.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.routing import Mount, Route
from starlette.testclient import TestClient
from tests.conftest import PG_URL, need, port_open
from tests.integration.test_api_v1 import ADMIN, PROBLEM, READ, seed_run

import faena
from faena.core.jsonlimits import MAX_JSON_DEPTH
from faena.web.app import create_app
from faena.web.guard import READ_METHODS

DEEP = 10_000
LIMIT = 64 * 1024  # the server's body limit in these tests: a 10,000-level body passes it
BASIC_ADMIN = "Basic " + base64.b64encode(f"demo:{ADMIN}".encode()).decode()
#: routes open without a token, as documented (docs/console.md, docs/api.md: health and the
#: console's own files; Camunda's engine list, open in Camunda too)
PUBLIC = {
    ("GET", "/"),
    ("GET", "/static/{name}"),
    ("GET", "/healthz"),
    ("GET", "/engine-rest/engine"),
}
CAMUNDA_ACTIONS = ("complete", "failure", "bpmnError", "extendLock", "lock", "unlock")


def route_table(asgi: Any) -> list[tuple[str, str]]:
    """Every (method, path template) the server answers, HEAD left out (GET's twin)."""
    found: list[tuple[str, str]] = []
    document = TestClient(asgi, headers={"Authorization": f"Bearer {ADMIN}"}).get("/openapi.json")
    for path, operations in document.json()["paths"].items():
        found += [(method.upper(), path) for method in operations]

    def walk(routes: list[Any], prefix: str) -> None:
        for route in routes:
            if isinstance(route, Route):
                found.extend(
                    (m, prefix + route.path) for m in sorted(route.methods or ()) if m != "HEAD"
                )
            elif isinstance(route, Mount):
                if prefix + route.path == "/api/v1":
                    continue  # read from its OpenAPI document above
                inner = route.app
                while not hasattr(inner, "routes") and hasattr(inner, "app"):
                    inner = inner.app  # middleware in front of a router
                walk(inner.routes, prefix + route.path)
            else:
                raise AssertionError(f"a route this test cannot read: {route!r}")

    walk(asgi.routes, "")
    return sorted(set(found))


class Store:
    def __init__(self, app: faena.App) -> None:
        self.app = app
        self.job_id = app.enqueue("seed.task", [1], queue="q1").id
        self.run_id = app.broker.create_run(seed_run()).id
        self.task_id = app.enqueue("x", kwargs={"a": 1}, queue="t").id

    def snapshot(self) -> Any:
        """What a refused request must leave as it was: jobs, runs, pools, paused queues."""
        broker = self.app.broker
        jobs = [
            (j.id, j.state, j.queue, j.attempt, j.cancel_requested, j.result)
            for j in broker.list_jobs(limit=1000)
        ]
        runs = [(r.id, r.state) for r in broker.list_runs(limit=1000)]
        return jobs, runs, broker.pool_stats(), broker.paused_queues()

    def urls(self, template: str) -> list[str]:
        """The template with real ids (a locked Camunda task, a job, a run)."""
        values = {
            "{job_id}": self.job_id,
            "{run_id}": self.run_id,
            "{name}": "etl_daily",
            "{queue}": "q1",
            "{pool}": "extra",
            "{id}": self.task_id,
            "{engine}": "default",
        }
        url = template
        for key, value in values.items():
            url = url.replace(key, value)
        if "{action}" in url:
            return [url.replace("{action}", action) for action in CAMUNDA_ACTIONS]
        assert "{" not in url, f"a path parameter this test does not fill: {template}"
        return [url]


def _open(url: str) -> faena.App:
    app = faena.App(broker=url)
    app.broker.setup()
    return app


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[TestClient, Store, list[tuple[str, str]]]]:
    app = _open(f"sqlite:///{tmp_path / 'bad.db'}")
    try:
        yield from _serve(app)
    finally:
        app.close()


@pytest.fixture
def served_pg() -> Iterator[tuple[TestClient, Store, list[tuple[str, str]]]]:
    need(port_open("127.0.0.1", 5432), "postgres is not running on port 5432")
    schema = f"ci_{uuid.uuid4().hex[:12]}"
    app = _open(f"{PG_URL}{'&' if '?' in PG_URL else '?'}schema={schema}")
    try:
        yield from _serve(app)
    finally:
        destroy = getattr(app.broker, "destroy", None)
        if callable(destroy):
            destroy()
        app.close()


def _serve(app: faena.App) -> Iterator[tuple[TestClient, Store, list[tuple[str, str]]]]:
    store = Store(app)
    asgi = create_app(app, admin_token=ADMIN, read_token=READ, max_body_bytes=LIMIT)
    with TestClient(asgi, raise_server_exceptions=False) as client:
        fetched = client.post(
            "/engine-rest/external-task/fetchAndLock",
            json={
                "workerId": "w",
                "maxTasks": 1,
                "topics": [{"topicName": "t", "lockDuration": 600_000}],
            },
            headers={"Authorization": f"Bearer {ADMIN}"},
        )
        assert [t["id"] for t in fetched.json()] == [store.task_id], fetched.text
        yield client, store, route_table(asgi)


def test_every_mount_is_read(
    served: tuple[TestClient, Store, list[tuple[str, str]]],
) -> None:
    _client, _store, routes = served
    paths = {path for _, path in routes}
    assert {"/api/v1/jobs", "/api/v1/pools/{pool}", "/engine-rest/external-task/fetchAndLock"} <= (
        paths
    )
    assert ("POST", "/engine-rest/engine/{engine}/external-task/{id}/{action}") in routes
    assert set(routes) >= PUBLIC, "a public route is gone: update PUBLIC and the docs"


def body_routes(routes: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """The routes that read a body: every mutating method (``/api/v1``'s guard reads the body
    of each, Camunda's POST and PUT routes parse theirs)."""
    return [(m, p) for m, p in routes if m not in READ_METHODS]


def deep_bodies() -> dict[str, bytes]:
    array = b"[" * DEEP + b"]" * DEEP
    obj = b'{"a":' * DEEP + b"1" + b"}" * DEEP
    return {
        "array": array,
        "object": obj,
        "in a field": b'{"task":"t","workerId":"w","args":' + array + b"}",
    }


def assert_refused(answer: Any, status: int, *words: str) -> None:
    assert answer.status_code == status, answer.text
    if answer.request.url.path.startswith("/api/v1"):
        assert answer.headers["content-type"] == PROBLEM
        detail = answer.json()["detail"]
    else:  # Camunda's own error shape
        assert answer.headers["content-type"] == "application/json", answer.headers
        detail = answer.json()["message"]
    for word in words:
        assert word in detail, detail


def test_deep_and_oversize_bodies_are_refused_on_every_body_route(
    served: tuple[TestClient, Store, list[tuple[str, str]]],
) -> None:
    client, store, routes = served
    as_admin = {"Authorization": f"Bearer {ADMIN}", "Content-Type": "application/json"}
    before = store.snapshot()
    bodies = deep_bodies()
    assert all(len(raw) < LIMIT for raw in bodies.values())
    oversize = json.dumps({"task": "t", "workerId": "w", "args": ["x" * LIMIT]})
    checked = []
    for method, template in body_routes(routes):
        for url in store.urls(template):
            if url.endswith("/unlock"):
                continue  # Camunda's unlock reads no body
            for kind, raw in bodies.items():
                answer = client.request(method, url, content=raw, headers=as_admin)
                assert_refused(answer, 400, f"limit of {MAX_JSON_DEPTH} levels", "flatten it")
                depth = DEEP + 1 if kind == "in a field" else DEEP
                assert f"({depth} levels)" in answer.text, (kind, method, url)
            answer = client.request(method, url, content=oversize, headers=as_admin)
            assert_refused(answer, 413, f"limit of {LIMIT} bytes", "send a smaller body")
            checked.append((method, url))
    assert len(checked) >= 25, checked
    assert {("POST", "/api/v1/jobs"), ("PUT", "/api/v1/pools/extra")} <= set(checked)
    assert store.snapshot() == before
    assert client.get("/api/v1/jobs", headers=as_admin).status_code == 200
    made = client.post("/api/v1/jobs", json={"task": "t.ok"}, headers=as_admin)
    assert made.status_code == 201, made.text


def test_deep_and_oversize_bodies_change_nothing_on_postgresql(
    served_pg: tuple[TestClient, Store, list[tuple[str, str]]],
) -> None:
    """One PostgreSQL case: the refusals come before the store, on any store."""
    client, store, _routes = served_pg
    as_admin = {"Authorization": f"Bearer {ADMIN}", "Content-Type": "application/json"}
    before = store.snapshot()
    for url in ("/api/v1/jobs", "/engine-rest/external-task/fetchAndLock"):
        for raw in deep_bodies().values():
            assert_refused(client.post(url, content=raw, headers=as_admin), 400, "flatten it")
        big = json.dumps({"task": "t", "args": ["x" * LIMIT]})
        assert_refused(client.post(url, content=big, headers=as_admin), 413, f"{LIMIT} bytes")
    assert store.snapshot() == before
    made = client.post("/api/v1/jobs", json={"task": "t.ok"}, headers=as_admin)
    assert made.status_code == 201, made.text


def test_a_deep_json_variable_is_refused_before_it_is_parsed(
    served: tuple[TestClient, Store, list[tuple[str, str]]],
) -> None:
    """A Camunda ``Json`` variable's value is JSON inside a string: the body is 2 levels deep,
    the string 10,000; the server parses it to store it as the result, so it is measured."""
    client, store, _routes = served
    before = store.snapshot()
    deep = "[" * DEEP + "]" * DEEP
    body = {"workerId": "w", "variables": {"doc": {"type": "Json", "value": deep}}}
    for url in store.urls("/engine-rest/external-task/{id}/complete") + store.urls(
        "/engine-rest/engine/{engine}/external-task/{id}/complete"
    ):
        answer = client.post(url, json=body, headers={"Authorization": f"Bearer {ADMIN}"})
        assert_refused(answer, 400, "variable 'doc' of type Json", f"({DEEP} levels)")
    assert store.snapshot() == before
    fine = {"workerId": "w", "variables": {"doc": {"type": "Json", "value": "[[1]]"}}}
    url = store.urls("/engine-rest/external-task/{id}/complete")[0]
    done = client.post(url, json=fine, headers={"Authorization": f"Bearer {ADMIN}"})
    assert done.status_code == 204, done.text
    assert store.app.broker.get(store.task_id).result == {"doc": [[1]]}  # type: ignore[union-attr]


# auth on every route ----------------------------------------------------------------------
#: a body that would change the store on each mutating route were it admitted
ANY_BODY = {
    "task": "t.a",
    "size": 2,
    "queue": "q1",
    "workerId": "w",
    "maxTasks": 1,
    "topics": [{"topicName": "t", "lockDuration": 1000}],
    "retries": 0,
    "errorCode": "e",
    "newDuration": 1000,
    "lockDuration": 1000,
}
WRONG_TOKENS = st.one_of(
    st.sampled_from(["", " ", "\t", ADMIN[:-1], ADMIN[:1], ADMIN + "x", " " + ADMIN + "x"]),
    st.text(min_size=1, max_size=40).filter(lambda t: t.strip() not in (ADMIN, READ)),
    st.just("x" * 100_000),
)


def guarded(routes: list[tuple[str, str]]) -> list[tuple[str, str]]:
    return [(m, p) for m, p in routes if (m, p) not in PUBLIC]


def _send(client: TestClient, store: Store, method: str, template: str, **kw: Any) -> list[Any]:
    body = (
        None
        if method in READ_METHODS
        else json.dumps({**ANY_BODY, "externalTaskIds": [store.task_id]})
    )
    return [client.request(method, url, content=body, **kw) for url in store.urls(template)]


def assert_denied(answer: Any, *statuses: int) -> None:
    assert answer.status_code in statuses, (answer.request.url, answer.status_code, answer.text)
    if answer.request.url.path.startswith("/api/v1"):
        assert answer.headers["content-type"] == PROBLEM, answer.headers


@settings(
    max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(token=WRONG_TOKENS, scheme=st.sampled_from(["Bearer", "bearer", "Basic", "Token"]))
def test_wrong_credentials_are_refused_on_every_route(
    served: tuple[TestClient, Store, list[tuple[str, str]]], token: str, scheme: str
) -> None:
    client, store, routes = served
    before = store.snapshot()
    value = token if scheme != "Basic" else base64.b64encode(f"demo:{token}".encode()).decode()
    header = {"Authorization": f"{scheme} {value}".encode()}
    for method, template in guarded(routes):
        for answer in _send(client, store, method, template, headers=header):
            assert_denied(answer, 401)
    assert store.snapshot() == before


def test_no_token_the_read_token_the_query_string_and_basic_are_refused_on_every_route(
    served: tuple[TestClient, Store, list[tuple[str, str]]],
) -> None:
    client, store, routes = served
    before = store.snapshot()
    as_reader = {"Authorization": f"Bearer {READ}"}
    basic_admin = {"Authorization": BASIC_ADMIN}
    counted = {"mutating": 0, "query": 0}
    for method, template in guarded(routes):
        api = template.startswith("/api/v1")
        engine = template.startswith("/engine-rest")
        for answer in _send(client, store, method, template):  # no token at all
            assert_denied(answer, 401)
        if method not in READ_METHODS:
            counted["mutating"] += 1
            for answer in _send(client, store, method, template, headers=as_reader):
                assert_denied(answer, 401 if engine else 403)  # Camunda takes no read token
                if api:
                    assert "needs the admin token" in answer.json()["detail"]
        for name in ("token", "access_token"):
            counted["query"] += 1
            for answer in _send(client, store, method, template, params={name: ADMIN}):
                assert_denied(answer, 400 if api else 401)
                if api:
                    assert answer.json()["error"] == "token_in_query"
        if not engine:  # Bearer routes: the admin token under the Basic scheme is no token
            for answer in _send(client, store, method, template, headers=basic_admin):
                assert_denied(answer, 401)
    assert counted["mutating"] >= 15 and counted["query"] >= 60, counted
    assert store.snapshot() == before


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "https://evil.example"},
        {"Origin": "null"},
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site", "Origin": "http://testserver"},
    ],
    ids=["origin", "null-origin", "fetch-site", "same-site"],
)
def test_cross_site_requests_are_refused_on_every_mutating_route_with_the_admin_token(
    served: tuple[TestClient, Store, list[tuple[str, str]]], headers: dict[str, str]
) -> None:
    client, store, routes = served
    before = store.snapshot()
    mutating = [(m, p) for m, p in guarded(routes) if m not in READ_METHODS]
    assert len(mutating) >= 15
    for credentials in ({"Authorization": f"Bearer {ADMIN}"}, {"Authorization": BASIC_ADMIN}):
        for method, template in mutating:
            if template.startswith("/api/v1") and "Basic" in credentials["Authorization"]:
                continue  # no Basic on /api/v1 (refused above, 401)
            for answer in _send(
                client, store, method, template, headers={**credentials, **headers}
            ):
                assert_denied(answer, 403)
                assert "from another site" in answer.text, answer.text
    assert store.snapshot() == before
    same = client.post(
        "/api/v1/jobs",
        json={"task": "t.ok"},
        headers={"Authorization": f"Bearer {ADMIN}", "Origin": "http://testserver"},
    )
    assert same.status_code == 201, same.text
