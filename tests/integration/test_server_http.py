"""``faena server`` as a process: JSON errors, access log lines, the port, SIGTERM, and
``/readyz`` while the query threads are all busy."""

from __future__ import annotations

import json
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from tests.integration.test_camunda_support import http, running_server, wait_for

import faena


def _events(log: Path) -> list[dict[str, Any]]:
    out = []
    for line in log.read_text().splitlines():
        if line.startswith("{"):
            out.append(json.loads(line))
    return out


def test_a_taken_port_is_an_error_naming_it_exit_2_and_never_started(tmp_path: Path) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "faena.cli.main",
                "server",
                "--broker",
                f"sqlite:///{tmp_path / 'p.db'}",
                "--port",
                str(port),
                "--log-format",
                "json",
            ],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=tmp_path,
        )
    output = done.stdout + done.stderr
    assert done.returncode == 2, output
    assert f"127.0.0.1:{port}" in done.stderr
    assert "already in use" in done.stderr and "--port" in done.stderr
    assert "server.started" not in output


def test_sigterm_logs_stopping_and_stopped_and_requests_are_logged_without_tokens(
    tmp_path: Path,
) -> None:
    broker = f"sqlite:///{tmp_path / 's.db'}"
    with running_server(broker, tmp_path, "--token", "s3cret-token") as server:
        auth = {"Authorization": "Bearer s3cret-token"}
        status, _, body = http("GET", f"{server.url}/api/v1/jobs?limit=abc", headers=auth)
        assert status == 400
        error = json.loads(body)
        assert error["error"] == "invalid_parameter"
        assert [(e["field"], e["value"]) for e in error["errors"]] == [("limit", "abc")]
        assert "valid integer" in error["message"]
        status, _, body = http("GET", f"{server.url}/no/such/route?token=s3cret-token")
        assert status == 401  # the token guards every route but /healthz, unknown ones too
        status, _, body = http("GET", f"{server.url}/no/such/route", headers=auth)
        assert status == 404
        assert json.loads(body)["error"] == "not_found"
        assert "/api/v1/jobs" in json.loads(body)["message"]
        status, _, body = http("DELETE", f"{server.url}/healthz")
        assert status == 405
        assert json.loads(body)["allowed"] == ["GET", "HEAD"]
        server.proc.send_signal(signal.SIGTERM)
        assert server.proc.wait(30) == 0
    text = server.log.read_text()
    assert "s3cret-token" not in text
    events = _events(server.log)
    names = [e["event"] for e in events]
    assert names.index("server.started") < names.index("server.stopping")
    assert names.index("server.stopping") < names.index("server.stopped")
    assert names.count("server.started") == 1
    requests = [e for e in events if e["event"] == "http.request"]
    seen = {(e["method"], e["path"], e["status"]) for e in requests}
    assert ("GET", "/api/v1/jobs", 400) in seen
    assert ("GET", "/no/such/route", 404) in seen
    assert ("GET", "/no/such/route", 401) in seen
    assert ("DELETE", "/healthz", 405) in seen
    assert all(
        isinstance(e["duration_ms"], int | float) and e["duration_ms"] >= 0 for e in requests
    )
    stopping = next(e for e in events if e["event"] == "server.stopping")
    assert stopping["signal"] == "SIGTERM"


#: more blocked requests than the event loop's default thread pool has threads (at most 32)
HELD_REQUESTS = 36


def test_readyz_answers_while_every_query_thread_is_held(tmp_path: Path) -> None:
    db = tmp_path / "held.db"
    broker = f"sqlite:///{db}"
    app = faena.App(broker=broker)
    app.broker.setup()
    app.close()
    with running_server(broker, tmp_path) as server:
        assert http("GET", f"{server.url}/readyz")[0] == 200
        # another process holds SQLite's write lock: every claim blocks in the busy handler
        # (for up to 30 s), each holding one of the server's query threads
        lock = sqlite3.connect(db, isolation_level=None)
        lock.execute("BEGIN IMMEDIATE")
        answers: list[int] = []
        body = {
            "workerId": "w",
            "maxTasks": 1,
            "topics": [{"topicName": "t", "lockDuration": 1000}],
        }

        def fetch() -> None:
            answers.append(http("POST", f"{server.engine}/external-task/fetchAndLock", body)[0])

        threads = [threading.Thread(target=fetch) for _ in range(HELD_REQUESTS)]
        try:
            for t in threads:
                t.start()
            time.sleep(1.0)  # let them reach the server's threads
            assert answers == []  # they are all held
            status, _, ready = http("GET", f"{server.url}/readyz")
            assert answers == []  # still held while /readyz answered
        finally:
            lock.execute("ROLLBACK")
            lock.close()
            for t in threads:
                t.join(60)
        assert status == 200, ready
        wait_for(lambda: len(answers) == HELD_REQUESTS, 30, "the held requests to end")
        assert answers == [200] * HELD_REQUESTS
