"""Bad input on every ``/engine-rest`` endpoint of a live ``faena server``: Camunda's status
and error body, and no harm to anything else. Then HTTP basic auth with the real clients."""

from __future__ import annotations

import base64
import contextlib
import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import need
from tests.integration.test_camunda_support import (
    Server,
    broker_url,
    enqueue,
    http,
    running_server,
    start_worker,
    wait_settled,
)

from faena.core.states import JobState

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("camunda-server")
    with running_server(broker_url("sqlite", tmp), tmp) as srv:
        yield srv


def _error(status: int, body: bytes, expect: int, text: str = "") -> dict[str, Any]:
    assert status == expect, body
    parsed: dict[str, Any] = json.loads(body)
    assert set(parsed) >= {"type", "message"}
    assert text in parsed["message"], parsed
    return parsed


@pytest.fixture
def locked(server: Server) -> Iterator[str]:
    """A task locked by worker 'owner'; after the test the owner can still complete it."""
    app = server.app()
    job_id = enqueue(app, "ok")
    status, _, body = http(
        "POST",
        f"{server.engine}/external-task/fetchAndLock",
        {
            "workerId": "owner",
            "maxTasks": 1,
            "topics": [{"topicName": "process-order", "lockDuration": 60000}],
        },
    )
    assert status == 200 and [t["id"] for t in json.loads(body)] == [job_id]
    yield job_id
    job = app.broker.get(job_id)
    assert job is not None and job.state is JobState.RUNNING and job.worker == "owner"
    status, headers, body = http(
        "POST", f"{server.engine}/external-task/{job_id}/complete", {"workerId": "owner"}
    )
    assert status == 204 and body == b""
    assert "content-type" not in {k.lower() for k in headers}
    done = app.broker.get(job_id)
    assert done is not None and done.state is JobState.SUCCEEDED


def test_fetch_and_lock_bad_input(server: Server) -> None:
    url = f"{server.engine}/external-task/fetchAndLock"
    topic = {"topicName": "process-order", "lockDuration": 1000}
    s, h, b = http("POST", url, raw=b"{not json")
    assert _error(s, b, 400)["type"] == "InvalidRequestException"
    assert h["content-type"] == "application/json"
    _error(*http("POST", url, {"maxTasks": 1, "topics": [topic]})[::2], 400, "workerId is null")
    bad_lock = {"topicName": "process-order", "lockDuration": -5}
    _error(*http("POST", url, {"workerId": "w", "maxTasks": 1, "topics": [bad_lock]})[::2], 400)
    zero = {"topicName": "process-order", "lockDuration": 0}
    _error(*http("POST", url, {"workerId": "w", "maxTasks": 1, "topics": [zero]})[::2], 400)
    too_long = {
        "workerId": "w",
        "maxTasks": 1,
        "asyncResponseTimeout": 1_800_001,
        "topics": [topic],
    }
    _error(*http("POST", url, too_long)[::2], 400, "1800000")
    sorting = {
        "workerId": "w",
        "maxTasks": 1,
        "topics": [topic],
        "sorting": [{"sortBy": "priority", "sortOrder": "asc"}],
    }
    _error(*http("POST", url, sorting)[::2], 400, "sortBy")
    _error(*http("POST", url, [1, 2])[::2], 400)
    _error(*http("POST", url, {"workerId": "w", "maxTasks": -1, "topics": [topic]})[::2], 400)
    status, headers, body = http("POST", url, {"workerId": "w", "maxTasks": 0, "topics": [topic]})
    assert (status, json.loads(body), headers["content-type"]) == (200, [], "application/json")


def test_task_actions_bad_input(server: Server, locked: str) -> None:
    base = f"{server.engine}/external-task"
    missing = "0" * 32
    for action, body in [
        ("complete", {"workerId": "owner"}),
        ("failure", {"workerId": "owner", "retries": 1}),
        ("bpmnError", {"workerId": "owner", "errorCode": "X"}),
        ("extendLock", {"workerId": "owner", "newDuration": 1000}),
        ("lock", {"workerId": "owner", "lockDuration": 1000}),
        ("unlock", None),
    ]:
        s, _, b = http("POST", f"{base}/{missing}/{action}", body)
        _error(s, b, 404, f"External task with id {missing} does not exist")
    # wrong worker: Camunda's messages, the owner keeps its lock
    _error(
        *http("POST", f"{base}/{locked}/complete", {"workerId": "thief"})[::2],
        400,
        f"External Task {locked} cannot be completed by worker 'thief'. It is locked by "
        f"worker 'owner'.",
    )
    _error(
        *http("POST", f"{base}/{locked}/failure", {"workerId": "thief"})[::2],
        400,
        "cannot be reported by worker 'thief'",
    )
    _error(
        *http("POST", f"{base}/{locked}/bpmnError", {"workerId": "thief", "errorCode": "E"})[::2],
        400,
        "Bpmn error of External",
    )
    _error(
        *http("POST", f"{base}/{locked}/extendLock", {"workerId": "thief", "newDuration": 1000})[
            ::2
        ],
        400,
        "cannot be extended",
    )
    _error(
        *http("POST", f"{base}/{locked}/lock", {"workerId": "thief", "lockDuration": 1000})[::2],
        400,
        "locked by worker",
    )
    # malformed bodies and values
    _error(*http("POST", f"{base}/{locked}/complete", raw=b"[")[::2], 400, "not valid JSON")
    unknown_type = {"workerId": "owner", "variables": {"x": {"value": 1, "type": "Money"}}}
    _error(
        *http("POST", f"{base}/{locked}/complete", unknown_type)[::2],
        400,
        "Unsupported value type 'Money'",
    )
    object_json = {"workerId": "owner", "variables": {"x": {"value": {"a": 1}, "type": "Json"}}}
    _error(*http("POST", f"{base}/{locked}/complete", object_json)[::2], 400, "String value")
    big = {"workerId": "owner", "variables": {"x": {"value": 2**40, "type": "Integer"}}}
    _error(*http("POST", f"{base}/{locked}/complete", big)[::2], 400, "Cannot convert")
    _error(
        *http("POST", f"{base}/{locked}/failure", {"workerId": "owner", "retries": -1})[::2], 400
    )
    _error(
        *http(
            "POST",
            f"{base}/{locked}/failure",
            {"workerId": "owner", "retries": 1, "retryTimeout": -1},
        )[::2],
        400,
    )
    _error(
        *http("POST", f"{base}/{locked}/bpmnError", {"workerId": "owner"})[::2],
        400,
        "errorCode is null",
    )
    _error(
        *http("POST", f"{base}/{locked}/extendLock", {"workerId": "owner", "newDuration": -1})[::2],
        400,
    )
    _error(
        *http("POST", f"{base}/{locked}/lock", {"workerId": "owner", "lockDuration": -1})[::2], 400
    )
    _error(*http("POST", f"{base}/{locked}/complete", {"workerId": {"a": 1}})[::2], 400)


def test_reads_and_retries_bad_input(server: Server, locked: str) -> None:
    base = f"{server.engine}/external-task"
    missing = "f" * 32
    _error(*http("GET", f"{base}/{missing}")[::2], 404, "does not exist")
    _error(*http("GET", f"{base}/{missing}/errorDetails")[::2], 404)
    _error(*http("PUT", f"{base}/{missing}/retries", {"retries": 1})[::2], 404)
    _error(*http("PUT", f"{base}/{locked}/retries", {"retries": None})[::2], 400, "cannot be null")
    _error(
        *http("PUT", f"{base}/{locked}/retries", {"retries": -2})[::2], 400, "cannot be negative"
    )
    _error(*http("PUT", f"{base}/retries", {"externalTaskIds": [locked]})[::2], 400)
    _error(*http("GET", f"{base}?sortBy=id")[::2], 400, "sortBy and sortOrder")
    _error(*http("GET", f"{base}?sortBy=color&sortOrder=asc")[::2], 400, "color")
    _error(*http("GET", f"{base}/count?locked=maybe")[::2], 400)
    _error(*http("POST", f"{base}/count", raw=b"{oops")[::2], 400)
    _error(
        *http("GET", f"{server.engine}/engine/other/external-task")[::2],
        404,
        "Process engine other not available",
    )
    # the good reads work, under the default engine's name too
    status, _, body = http("GET", f"{server.engine}/engine/default/external-task/{locked}")
    assert status == 200 and json.loads(body)["workerId"] == "owner"
    status, _, body = http("GET", f"{base}/count?workerId=owner&locked=true")
    assert json.loads(body)["count"] >= 1
    status, _, body = http("POST", f"{base}", {"workerId": "owner", "topicName": "process-order"})
    assert locked in [t["id"] for t in json.loads(body)]
    assert http("GET", f"{base}/{locked}/errorDetails")[0] == 204


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("camunda-auth")
    with running_server(
        broker_url("sqlite", tmp),
        tmp,
        "--token",
        "s3cret",
        "--camunda-user",
        "demo",
        "--camunda-password",
        "pw",
    ) as srv:
        yield srv


def test_basic_auth(guarded: Server) -> None:
    url = f"{guarded.engine}/external-task/count"
    status, headers, body = http("GET", url)
    assert (status, body) == (401, b"")
    assert headers["www-authenticate"] == 'Basic realm="default"'
    wrong = base64.b64encode(b"demo:nope").decode()
    assert http("GET", url, headers={"Authorization": f"Basic {wrong}"})[0] == 401
    right = base64.b64encode(b"demo:pw").decode()
    assert http("GET", url, headers={"Authorization": f"Basic {right}"})[0] == 200
    assert http("GET", url, headers={"Authorization": "Bearer s3cret"})[0] == 200
    assert http("GET", f"{guarded.engine}/engine")[0] == 200
    assert http("GET", f"{guarded.url}/healthz")[0] == 200
    assert http("GET", f"{guarded.url}/api/v1/jobs")[0] == 401
    ok = http("GET", f"{guarded.url}/api/v1/jobs", headers={"Authorization": "Bearer s3cret"})
    assert ok[0] == 200


@pytest.mark.parametrize("kind", [pytest.param("node", marks=pytest.mark.node), "python3", "faena"])
def test_real_clients_with_basic_auth(kind: str, guarded: Server, tmp_path: Path) -> None:
    app = guarded.app()
    job_id = enqueue(app, "ok")
    worker = start_worker(
        kind, guarded, tmp_path, f"{kind}-auth", CAMUNDA_USER="demo", CAMUNDA_PASSWORD="pw"
    )
    try:
        job = wait_settled(app, [job_id], timeout=30)[job_id]
    finally:
        worker.stop()
    assert job.state is JobState.SUCCEEDED, worker.log.read_text()


def test_basic_auth_guards_every_path_but_the_engine_list(guarded: Server) -> None:
    """Only ``/engine-rest/engine`` itself is open; a path that merely ends in ``/engine``
    needs credentials like any other."""
    right = {"Authorization": "Basic " + base64.b64encode(b"demo:pw").decode()}
    for path in (
        "/external-task/engine",
        "/engine/default/external-task/engine",
        "/engine/default/engine",
        "/version/engine",
    ):
        status, headers, body = http("GET", f"{guarded.engine}{path}")
        assert (status, body) == (401, b""), path
        assert headers["www-authenticate"] == 'Basic realm="default"'
        assert http("GET", f"{guarded.engine}{path}", headers=right)[0] == 404, path
    assert http("GET", f"{guarded.engine}/engine/")[0] in (200, 307)
    assert json.loads(http("GET", f"{guarded.engine}/engine")[2]) == [{"name": "default"}]


def _raw_post(server: Server, path: str, head: bytes, chunks: list[bytes]) -> bytes:
    """Send a request by hand (a declared length, or chunks) and read the answer's start."""
    host, port = server.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=20) as sock:
        sock.sendall(f"POST {path} HTTP/1.1\r\nHost: x\r\n".encode() + head + b"\r\n")
        with contextlib.suppress(OSError):  # the server may stop reading at the limit
            for chunk in chunks:
                sock.sendall(chunk)
        answer = b""
        while b"\r\n\r\n" not in answer or not answer.rstrip().endswith(b"}"):
            data = sock.recv(65536)
            if not data:
                break
            answer += data
        return answer


def _peak_kib(status: Path) -> int:
    """The process's peak resident memory (``VmHWM``), in KiB."""
    line = next(x for x in status.read_text().splitlines() if x.startswith("VmHWM:"))
    return int(line.split()[1])


def test_bodies_over_the_limit_are_413_and_the_server_stays_fine(server: Server) -> None:
    """Issue 18: the body is bounded before it is read (default 1 MiB + the payload limit:
    2 MiB here), whether its length is declared or it comes in chunks."""
    app = server.app()
    job_id = enqueue(app, "ok")
    path = "/engine-rest/external-task/fetchAndLock"
    fetch = json.dumps(
        {
            "workerId": "big",
            "maxTasks": 1,
            "topics": [{"topicName": "process-order", "lockDuration": 1000}],
        }
    ).encode()
    # a declared 50 MB: refused before the body comes (only 2 bytes are ever sent)
    answer = _raw_post(server, path, b"Content-Length: 50000000\r\n", [b"{}"])
    assert answer.startswith(b"HTTP/1.1 413 "), answer[:200]
    assert b"Content-Length is 50000000" in answer
    # 64 MiB in chunks, no length declared: refused once past the limit, and the server's
    # peak memory grows by far less than the body (it held the whole body before the fix)
    status_file = Path(f"/proc/{server.proc.pid}/status")
    need(status_file.exists(), "no /proc: cannot read the server's peak memory")
    peak_before = _peak_kib(status_file)
    pad = b" " * 65536
    chunks = [b"%x\r\n%s\r\n" % (len(fetch), fetch)]
    chunks += [b"%x\r\n%s\r\n" % (len(pad), pad)] * 1024 + [b"0\r\n\r\n"]
    answer = _raw_post(server, path, b"Transfer-Encoding: chunked\r\n", chunks)
    assert answer.startswith(b"HTTP/1.1 413 "), answer[:200]
    assert b"2097152 bytes" in answer
    assert _peak_kib(status_file) - peak_before < 32 * 1024
    # nothing was claimed, and the server answers as before
    job = app.broker.get(job_id)
    assert job is not None and job.state is JobState.QUEUED and job.attempt == 0
    assert http("GET", f"{server.url}/healthz")[0] == 200
    status, _, body = http("GET", f"{server.engine}/external-task/{job_id}")
    assert status == 200 and json.loads(body)["workerId"] is None
