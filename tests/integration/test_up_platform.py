"""``faena up APP`` is the whole platform in one process: it logs the console's URL
(``up.started``), serves the console at ``/``, the API (with the autoscaler's state), the
Camunda routes and one ``/metrics`` with the broker's queues and the supervisor's gauges,
runs a job through its supervised worker, and stops on SIGTERM with exit code 0."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

from tests.integration.test_camunda_support import wait_for

ROOT = Path(__file__).resolve().parents[2]
APP = """
import faena

app = faena.App(broker="sqlite:///up.db")


@app.task(queue="work")
def double(n: int) -> int:
    return 2 * n
"""


def _get(url: str) -> tuple[int, str]:
    with urllib.request.urlopen(url, timeout=10) as answer:
        return answer.status, answer.read().decode()


def _events(log: Path) -> list[dict[str, Any]]:
    found = []
    for line in log.read_text().splitlines():
        try:
            found.append(json.loads(line))
        except ValueError:
            continue
    return found


def test_faena_up_serves_everything_and_runs_the_job(tmp_path: Path) -> None:
    (tmp_path / "upapp.py").write_text(APP)
    log = tmp_path / "up.log"
    env = dict(
        os.environ,
        PYTHONPATH=os.pathsep.join([str(ROOT / "src"), str(tmp_path)]),
        PYTHONUNBUFFERED="1",
    )
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "faena.cli.main", "up", "upapp:app", "--port", "0",
             "--sync-period", "1", "--no-auth", "--log-format", "json"],
            cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:

        def started() -> bool:
            assert proc.poll() is None, log.read_text()
            return any(e.get("event") == "up.started" for e in _events(log))

        wait_for(started, 60, "faena up to log up.started")
        [event] = [e for e in _events(log) if e.get("event") == "up.started"]
        url = event["url"]
        assert url.startswith("http://127.0.0.1:") and f"{url}/" in event["message"]
        status, page = _get(url + "/")
        assert status == 200 and "faena console" in page
        assert json.loads(_get(url + "/engine-rest/engine")[1]) == [{"name": "default"}]
        request = urllib.request.Request(
            url + "/api/v1/jobs",
            data=json.dumps({"task": "upapp.double", "args": [21]}).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=10) as made:
            job = json.loads(made.read())

        def succeeded() -> bool:
            shown = json.loads(_get(f"{url}/api/v1/jobs/{job['id']}")[1])
            return bool(shown["state"] == "succeeded" and shown["result"] == 42)

        wait_for(succeeded, 60, "the supervised worker to run the job")

        def synced() -> bool:
            found = json.loads(_get(url + "/api/v1/autoscaler")[1])["autoscalers"]
            # after a sync, and with the ready worker counted (reported when it becomes ready)
            return bool(found) and found[0]["reason"] != "Starting" and found[0]["current"] == 1

        wait_for(synced, 30, "the autoscaler's state: a sync, and its worker ready")
        [scaler] = json.loads(_get(url + "/api/v1/autoscaler")[1])["autoscalers"]
        assert (scaler["current"], scaler["desired"], scaler["stale"]) == (1, 1, False)
        assert scaler["metrics"][0]["metric"] == "External/celery_queue_length"
        assert scaler["metrics"][0]["target"] == "10"
        _, metrics = _get(url + "/metrics")
        assert 'faena_workers{state="ready"} 1.0' in metrics
        assert (
            "faena_desired_workers{" in metrics and 'celery_queue_length{queue="work"}' in metrics
        )
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0, log.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    names = [e.get("event") for e in _events(log)]
    assert (
        "autoscale.stopped" in names and "server.stopped" not in names[: names.index("up.started")]
    )
