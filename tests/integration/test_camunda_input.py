"""Bad input on the ``/engine-rest`` routes, in process: bounded durations and counts (no
claim before a 400), JSON bodies that cannot be stored (deep, non-finite, lone surrogates),
bodies over the size limit (413), and reads that survive an absurd lease already stored."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient
from tests.conftest import PG_URL, REDIS_URL, need, port_open

import faena
from faena.camunda.variables import parse_date
from faena.core.states import JobState
from faena.web import create_app

#: the limits docs/camunda.md promises (faena.camunda.server.requests)
MAX_DURATION_MS = 30 * 24 * 3600 * 1000
MAX_TASKS = 1000
MAX_RETRIES = 1_000_000
BASE = "/engine-rest/external-task"
FETCH = f"{BASE}/fetchAndLock"


@pytest.fixture(params=["memory", "sqlite"])
def app(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[faena.App]:
    if request.param == "memory":
        app = faena.App(broker="memory://")
    else:
        app = faena.App(broker=f"sqlite:///{tmp_path / 'faena.db'}")
    yield app
    app.close()


@pytest.fixture(params=["memory", "sqlite", "postgres", "redis"])
def every_app(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[faena.App]:
    """An app on each backend, its store dropped afterwards (for the rules of stored values)."""
    urls = {
        "memory": "memory://",
        "sqlite": f"sqlite:///{tmp_path / 'faena.db'}",
        "postgres": f"{PG_URL}{'&' if '?' in PG_URL else '?'}schema=ci_{uuid.uuid4().hex[:12]}",
        "redis": f"{REDIS_URL}{'&' if '?' in REDIS_URL else '?'}prefix=ci{uuid.uuid4().hex[:12]}",
    }
    if request.param in ("postgres", "redis"):
        port = 5432 if request.param == "postgres" else 6379
        need(port_open("127.0.0.1", port), f"{request.param} is not running on port {port}")
    app = faena.App(broker=urls[request.param])
    yield app
    destroy = getattr(app.broker, "destroy", None)
    if callable(destroy):
        destroy()
    app.broker.close()


@pytest.fixture
def every_client(every_app: faena.App) -> Iterator[TestClient]:
    with TestClient(create_app(every_app), raise_server_exceptions=False) as c:
        yield c


@pytest.fixture
def client(app: faena.App) -> Iterator[TestClient]:
    with TestClient(create_app(app), raise_server_exceptions=False) as c:
        yield c


def fetch_body(**topic: Any) -> dict[str, Any]:
    return {
        "workerId": "w",
        "maxTasks": 1,
        "topics": [{"topicName": "t", "lockDuration": 1000, **topic}],
    }


def assert_400(response: Any, *words: str) -> None:
    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == "application/json"
    error = response.json()
    assert error["type"] == "InvalidRequestException", error
    for word in words:
        assert word in error["message"], error


def assert_reads_answer(client: TestClient, *ids: str) -> None:
    listed = client.get(BASE)
    assert listed.status_code == 200, listed.text
    assert {t["id"] for t in listed.json()} == set(ids)
    assert client.get(f"{BASE}/count").json() == {"count": len(ids)}
    assert client.get(f"{BASE}/topic-names").status_code == 200
    assert client.post(f"{BASE}/count", json={"locked": True}).status_code == 200
    for task_id in ids:
        assert client.get(f"{BASE}/{task_id}").status_code == 200


# item 2: durations and counts are bounded before any write ---------------------------------
@pytest.mark.parametrize(
    ("body", "words"),
    [
        (fetch_body(lockDuration=1e15), ("lockDuration", "2592000000", "1000000000000000")),
        (fetch_body(lockDuration=MAX_DURATION_MS + 1), ("lockDuration", "2592000000")),
        (fetch_body(lockDuration=10**400), ("lockDuration", "401 digits")),
        ({**fetch_body(), "maxTasks": 10**12}, ("maxTasks", str(MAX_TASKS))),
        (
            {**fetch_body(), "asyncResponseTimeout": 1e15},
            ("asyncResponseTimeout", "1800000", "1000000000000000"),
        ),
    ],
)
def test_fetch_with_an_unbounded_value_claims_nothing(
    app: faena.App, client: TestClient, body: dict[str, Any], words: tuple[str, ...]
) -> None:
    job = app.enqueue("x", queue="t")
    before = app.broker.get(job.id)
    assert_400(client.post(FETCH, json=body), *words)
    after = app.broker.get(job.id)
    assert before is not None and after == before
    assert (after.state, after.attempt, after.worker) == (JobState.QUEUED, 0, None)
    assert_reads_answer(client, job.id)


def test_a_lock_at_the_limit_is_taken_and_shown(
    every_app: faena.App, every_client: TestClient
) -> None:
    app, client = every_app, every_client
    job = app.enqueue("x", queue="t")
    locked = client.post(FETCH, json=fetch_body(lockDuration=MAX_DURATION_MS))
    assert locked.status_code == 200 and [t["id"] for t in locked.json()] == [job.id]
    assert_reads_answer(client, job.id)
    shown = client.get(f"{BASE}/{job.id}").json()["lockExpirationTime"]
    stored = app.broker.get(job.id)
    assert stored is not None and stored.lease_expires_at is not None
    assert stored.started_at is not None
    assert stored.lease_expires_at - stored.started_at == pytest.approx(30 * 86400)
    assert parse_date(shown).timestamp() == pytest.approx(stored.lease_expires_at, abs=0.001)


@pytest.mark.parametrize(
    ("action", "body", "words"),
    [
        ("extendLock", {"workerId": "w", "newDuration": 1e15}, ("newDuration", "2592000000")),
        ("lock", {"workerId": "w", "lockDuration": 10**20}, ("lockDuration", "2592000000")),
        (
            "failure",
            {"workerId": "w", "retries": 1, "retryTimeout": 1e15},
            ("retryTimeout", "2592000000"),
        ),
        ("failure", {"workerId": "w", "retries": 2**40}, ("retries", str(MAX_RETRIES))),
    ],
)
def test_task_actions_with_unbounded_values_change_nothing(
    app: faena.App, client: TestClient, action: str, body: dict[str, Any], words: tuple[str, ...]
) -> None:
    job = app.enqueue("x", queue="t")
    assert client.post(FETCH, json=fetch_body(lockDuration=60_000)).status_code == 200
    before = app.broker.get(job.id)
    assert_400(client.post(f"{BASE}/{job.id}/{action}", json=body), *words)
    assert app.broker.get(job.id) == before
    assert_reads_answer(client, job.id)


@pytest.mark.parametrize(
    ("url", "words"),
    [
        (f"{BASE}?firstResult=3000000000", ("firstResult", "2147483647")),
        (f"{BASE}?maxResults=99999999999999999999", ("maxResults",)),
        (f"{BASE}/count?priorityHigherThanOrEquals=1e400", ("priorityHigherThanOrEquals",)),
        (f"{BASE}/count?priorityLowerThanOrEquals={2**70}", ("9223372036854775807",)),
    ],
)
def test_query_numbers_are_bounded(client: TestClient, url: str, words: tuple[str, ...]) -> None:
    assert_400(client.get(url), *words)


def test_put_retries_is_bounded(app: faena.App, client: TestClient) -> None:
    job = app.enqueue("x", queue="t")
    assert_400(client.put(f"{BASE}/{job.id}/retries", json={"retries": 2**31}), "retries")
    assert_400(
        client.put(f"{BASE}/retries", json={"retries": 10**30, "externalTaskIds": [job.id]}),
        "retries",
    )


def test_reads_survive_an_absurd_lease_already_stored(
    every_app: faena.App, every_client: TestClient
) -> None:
    """A lease of 31,686 years, as an unbounded lockDuration stored before the fix."""
    app, client = every_app, every_client
    job = app.enqueue("x", queue="t")
    claimed = app.broker.claim("w", ["t"], 1, 1e12)
    assert [j.id for j in claimed.jobs] == [job.id]
    assert_reads_answer(client, job.id)
    task = client.get(f"{BASE}/{job.id}").json()
    assert task["lockExpirationTime"] == "9999-12-31T23:59:59.999+0000"
    assert client.get(f"{BASE}/count?locked=true").json() == {"count": 1}
    assert client.post(f"{BASE}/{job.id}/unlock").status_code == 204
    assert client.post(FETCH, json=fetch_body()).json()[0]["id"] == job.id


# issue 16 item 6: JSON that cannot be stored is a 400 on every route -------------------------
def json_routes(task_id: str) -> list[tuple[str, str]]:
    return [
        ("POST", FETCH),
        ("POST", BASE),
        ("POST", f"{BASE}/count"),
        ("PUT", f"{BASE}/retries"),
        ("PUT", f"{BASE}/{task_id}/retries"),
        *[
            ("POST", f"{BASE}/{task_id}/{action}")
            for action in ("complete", "failure", "bpmnError", "extendLock", "lock")
        ],
        ("POST", f"/engine-rest/engine/default/external-task/{task_id}/complete"),
    ]


DEEP = 100_000
BAD_BODIES = {
    "deep array": b"[" * DEEP + b"]" * DEEP,
    "deep object": b'{"a":' * DEEP + b"1" + b"}" * DEEP,
    "65 levels": b'{"workerId":"w","variables":' + b"[" * 64 + b"]" * 64 + b"}",
    "1e400": b'{"workerId":"w","maxTasks":1,"priorityHigherThanOrEquals":1e400,"retries":1e400}',
    "NaN": b'{"workerId":"w","retries":NaN}',
    "-Infinity": b'{"workerId":"w","retries":-Infinity}',
    "lone surrogate": b'{"workerId":"w\\ud800","topicName":"t","retries":1}',
    "surrogate key": b'{"workerId":"w","variables":{"\\udfff":{"value":1}}}',
    "5000 digits": b'{"workerId":"w","retries":' + b"9" * 5000 + b"}",
    "not utf-8": b'{"workerId":"\xed\xa0\x80"}',
}


@pytest.mark.parametrize("kind", sorted(BAD_BODIES))
def test_unstorable_json_is_refused_on_every_route(
    app: faena.App, client: TestClient, kind: str
) -> None:
    job = app.enqueue("x", kwargs={"a": 1}, queue="t")
    assert client.post(FETCH, json=fetch_body(lockDuration=60_000)).status_code == 200
    before = app.broker.get(job.id)
    for method, url in json_routes(job.id):
        response = client.request(
            method, url, content=BAD_BODIES[kind], headers={"content-type": "application/json"}
        )
        assert_400(response)
        assert app.broker.get(job.id) == before, (method, url)
    assert_reads_answer(client, job.id)


def test_surrogate_pairs_and_deep_enough_json_still_work(
    app: faena.App, client: TestClient
) -> None:
    job = app.enqueue("x", queue="t")
    assert client.post(FETCH, json=fetch_body(lockDuration=60_000)).status_code == 200
    nested = "[" * 60 + "]" * 60  # 63 levels in the body, under the limit of 64
    body = (
        '{"workerId":"w","variables":{"emoji":{"type":"String","value":"\\ud83d\\ude00"},'
        f'"deep":{{"value":{nested}}}}}}}'
    )
    response = client.post(f"{BASE}/{job.id}/complete", content=body)
    assert response.status_code == 204, response.text
    done = app.broker.get(job.id)
    assert done is not None and done.state is JobState.SUCCEEDED
    deep: Any = json.loads(nested)
    assert done.result == {"emoji": "\U0001f600", "deep": deep}


def test_nul_in_a_task_id_is_not_found_on_every_backend(
    every_app: faena.App, every_client: TestClient
) -> None:
    client = every_client
    job = every_app.enqueue("x", queue="t")
    for method, url in [
        ("GET", f"{BASE}/a%00b"),
        ("GET", f"{BASE}/a%00b/errorDetails"),
        ("POST", f"{BASE}/a%00b/complete"),
        ("POST", f"{BASE}/a%00b/unlock"),
        ("PUT", f"{BASE}/a%00b/retries"),
    ]:
        body = {"workerId": "w", "retries": 1}
        response = client.request(method, url, json=None if "unlock" in url else body)
        assert response.status_code == 404, (url, response.text)
    retries = {"retries": 1, "externalTaskIds": ["a\x00b", job.id]}
    assert client.put(f"{BASE}/retries", json=retries).status_code == 204
    assert_reads_answer(client, job.id)


@pytest.mark.parametrize("field", ["workerId", "topicName"])
def test_nul_in_a_name_is_refused_before_the_broker(
    app: faena.App, client: TestClient, field: str
) -> None:
    job = app.enqueue("x", queue="t")
    body = fetch_body()
    if field == "workerId":
        body["workerId"] = "w\x00"
    else:
        body["topics"][0]["topicName"] = "t\x00"
    assert_400(client.post(FETCH, json=body), field, "NUL")
    assert_400(client.get(f"{BASE}?{field}=a%00b"), field, "NUL")
    assert_400(client.post(f"{BASE}/count", json={field: "a\x00"}), field, "NUL")
    stored = app.broker.get(job.id)
    assert stored is not None and stored.state is JobState.QUEUED


# issue 18: bodies are bounded before they are read --------------------------------------------
def asgi_post(
    web: Any, path: str, chunks: list[bytes], headers: list[tuple[bytes, bytes]]
) -> tuple[int, bytes, int]:
    """Call the ASGI app with a hand-made stream: (status, body, chunks the app pulled)."""
    pulled = 0
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        nonlocal pulled
        if pulled < len(chunks) and chunks[pulled] == DISCONNECT:
            pulled += 1
            return {"type": "http.disconnect"}
        if pulled < len(chunks):
            pulled += 1
            return {
                "type": "http.request",
                "body": chunks[pulled - 1],
                "more_body": pulled < len(chunks),
            }
        await asyncio.sleep(3600)  # the client never disconnects during the test
        raise AssertionError

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"test"), (b"content-type", b"application/json"), *headers],
        "client": ("127.0.0.1", 1),
        "server": ("test", 80),
    }
    asyncio.run(asyncio.wait_for(web(scope, receive, send), 30))
    status = next(m["status"] for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return status, body, pulled


DISCONNECT = b"<the client leaves>"
PAYLOAD_LIMIT = 1000
LIMIT = 1024 * 1024 + PAYLOAD_LIMIT  # the default: 1 MiB + the app's payload limit
CHUNK = b" " * 16 * 1024  # whitespace: valid JSON padding if the limit were not enforced


@pytest.fixture
def small(tmp_path: Path) -> faena.App:
    return faena.App(broker="memory://", max_payload_bytes=PAYLOAD_LIMIT)


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param([], id="chunked"),
        pytest.param([(b"content-length", b"10")], id="content-length-lies"),
    ],
)
def test_a_streamed_body_over_the_limit_is_413_after_the_limit(
    small: faena.App, headers: list[tuple[bytes, bytes]]
) -> None:
    job = small.enqueue("x", queue="t")
    web = create_app(small)
    body = json.dumps(fetch_body()).encode()
    chunks = [body, *[CHUNK] * (2 * LIMIT // len(CHUNK))]  # claims the job if it is read
    status, answer, pulled = asgi_post(web, FETCH, chunks, headers)
    assert status == 413, answer
    error = json.loads(answer)
    assert error["type"] == "InvalidRequestException" and str(LIMIT) in error["message"]
    assert pulled <= LIMIT // len(CHUNK) + 2  # stopped reading at the limit
    stored = small.broker.get(job.id)
    assert stored is not None and stored.state is JobState.QUEUED
    status, answer, _ = asgi_post(web, FETCH, [body], [])
    assert status == 200 and [t["id"] for t in json.loads(answer)] == [job.id]


def test_a_declared_length_over_the_limit_is_413_before_reading(small: faena.App) -> None:
    web = create_app(small)
    headers = [(b"content-length", str(LIMIT + 1).encode())]
    status, answer, pulled = asgi_post(web, FETCH, [b"{}"], headers)
    assert (status, pulled) == (413, 0)
    assert f"Content-Length is {LIMIT + 1}" in json.loads(answer)["message"]
    status, answer, _ = asgi_post(web, FETCH, [b"{"], [(b"content-length", b"ten")])
    assert status == 400 and "Content-Length" in json.loads(answer)["message"]


def test_the_default_limit_is_a_mebibyte_plus_the_payload_limit(small: faena.App) -> None:
    web = create_app(small)
    under = b" " * (LIMIT - 2) + b"{}"
    status, answer, _ = asgi_post(web, f"{BASE}/count", [under], [])
    assert (status, json.loads(answer)) == (200, {"count": 0})
    status, _, _ = asgi_post(web, f"{BASE}/count", [under + b" "], [])
    assert status == 413


def test_the_limit_is_configurable(small: faena.App) -> None:
    web = create_app(small, max_body_bytes=100)
    status, answer, _ = asgi_post(web, f"{BASE}/count", [b" " * 99 + b"{}"], [])
    assert status == 413 and "100 bytes" in json.loads(answer)["message"]
    status, answer, _ = asgi_post(web, f"{BASE}/count", [b" " * 98 + b"{}"], [])
    assert status == 200


def test_a_variable_no_camunda_type_holds_is_sent_as_json(
    app: faena.App, client: TestClient
) -> None:
    """faena's payloads allow integers past 64 bits; the fetch must answer them (as ``Json``)
    rather than fail after the claim and leave the task locked."""
    job = app.enqueue("x", kwargs={"big": 2**70, "a": 1}, queue="t")
    response = client.post(FETCH, json=fetch_body())
    assert response.status_code == 200, response.text
    (task,) = response.json()
    assert task["variables"]["big"] == {
        "type": "Json",
        "value": str(2**70),
        "valueInfo": {},
    }
    assert task["variables"]["a"]["type"] == "Integer"
    assert client.get(f"{BASE}/{job.id}").json()["workerId"] == "w"


def test_a_client_leaving_mid_body_is_a_bad_request_not_a_server_error(
    small: faena.App, caplog: pytest.LogCaptureFixture
) -> None:
    job = small.enqueue("x", queue="t")
    web = create_app(small)
    chunks = [json.dumps(fetch_body()).encode()[:20], DISCONNECT]
    status, answer, _ = asgi_post(web, FETCH, chunks, [])
    assert status == 400 and "closed the connection after 20 bytes" in answer.decode()
    assert "camunda endpoint failed" not in caplog.text
    stored = small.broker.get(job.id)
    assert stored is not None and stored.state is JobState.QUEUED
