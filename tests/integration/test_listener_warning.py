"""A worker whose metrics listener accepts other machines says so as a JSON log line, like
every other line it writes under ``--log-format json`` (a container's log collector parses
each line; a plain-text warning would fail Loki's ``json`` stage)."""

from __future__ import annotations

import json
from pathlib import Path

from tests.integration.test_metrics_support import (
    free_port,
    http_get,
    start_worker,
    stop_worker,
    wait_for,
    write_app,
)


def test_an_exposed_metrics_listener_is_a_json_warning(tmp_path: Path) -> None:
    app_path = write_app(tmp_path)
    broker = f"sqlite:///{tmp_path / 'faena.db'}"
    port = free_port()
    proc = start_worker(
        tmp_path, app_path, broker, "--queues", "etl_pool", "--metrics-port", str(port),
        "--metrics-addr", "0.0.0.0", "--log-format", "json",
    )  # fmt: skip
    try:
        wait_for(
            lambda: http_get(f"http://127.0.0.1:{port}/readyz")[0] == 200, 20, "a ready worker"
        )
    finally:
        out, err = stop_worker(proc)
    assert proc.returncode == 0, err
    lines = [line for line in (out + err).splitlines() if line.strip()]
    records = [json.loads(line) for line in lines]  # every line is one JSON object
    [warning] = [r for r in records if r.get("event") == "listener.exposed"]
    assert warning["level"] == "warning"
    assert warning["host"] == "0.0.0.0" and warning["option"] == "--metrics-addr"
    assert "bind --metrics-addr 127.0.0.1" in warning["message"]
