"""The official Camunda 8 Node client (npm ``@camunda8/sdk`` 8.8.13) working faena jobs
through ``faena server --zeebe-port``: its polling worker and its job stream, with the
server's token as the SDK's bearer (``CAMUNDA_AUTH_STRATEGY=BEARER``)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
from tests.conftest import need
from tests.integration.test_camunda_support import (
    broker_url,
    free_port,
    running_server,
    wait_settled,
)
from tests.integration.zeebe_support import TYPE

from faena.core.states import JobState
from faena.zeebe.jobs import BPMN_ERROR, FAILURE

pytestmark = [pytest.mark.slow, pytest.mark.node]
SDK_VERSION = "8.8.13"
HERE = Path(__file__).resolve().parent / "zeebe_node"
BROKERS = [pytest.param("sqlite"), pytest.param("postgres", marks=pytest.mark.postgres)]


def node_worker() -> Path:
    """A copy of tests/integration/zeebe_node with its npm dependencies installed."""
    need(
        shutil.which("node") is not None and shutil.which("npm") is not None,
        "Node.js and npm are not installed",
    )
    home = Path(tempfile.gettempdir()) / f"faena-zeebe-node-{SDK_VERSION}"
    marker = home / "node_modules" / "@camunda8" / "sdk" / "package.json"
    shutil.copytree(HERE, home, dirs_exist_ok=True, ignore=shutil.ignore_patterns("node_modules"))
    if not marker.exists():
        npm = subprocess.run(
            ["npm", "install", "--no-audit", "--no-fund"], cwd=home, capture_output=True, text=True
        )
        need(npm.returncode == 0, f"npm install of @camunda8/sdk failed: {npm.stderr[-500:]}")
    assert json.loads(marker.read_text())["version"] == SDK_VERSION
    return home


@pytest.mark.parametrize("broker", BROKERS)
@pytest.mark.parametrize("stream", ["0", "1"], ids=["poll", "stream"])
def test_the_node_job_worker_completes_fails_and_throws(
    broker: str, stream: str, tmp_path: Path
) -> None:
    home = node_worker()
    port = free_port()
    url = broker_url(broker, tmp_path)
    with running_server(url, tmp_path, "--token", "s3cret", "--zeebe-port", str(port)) as srv:
        app = srv.app()

        def job(mode: str, retries: int = 3) -> str:
            kwargs = {"mode": mode, "n": 4}
            return app.enqueue("order.process", kwargs=kwargs, queue=TYPE, retries=retries).id

        ok, fail, bpmn = job("ok"), job("fail", retries=2), job("bpmn")
        env = {
            **os.environ,
            "ZEEBE_GRPC_ADDRESS": f"grpc://127.0.0.1:{port}",
            "CAMUNDA_AUTH_STRATEGY": "BEARER",
            "CAMUNDA_OAUTH_TOKEN": "s3cret",
            "TYPE": TYPE,
            "WORKER_NAME": "node-w",
            "STREAM": stream,
            "ZEEBE_CLIENT_LOG_LEVEL": "DEBUG",
        }
        log = tmp_path / "node.log"
        with open(log, "wb") as out:
            proc = subprocess.Popen(
                ["node", "worker.js"], cwd=home, env=env, stdout=out, stderr=out
            )
        try:
            jobs = wait_settled(app, [ok, fail, bpmn], timeout=60)
        finally:
            proc.terminate()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        text = log.read_text()
        assert jobs[ok].state is JobState.SUCCEEDED, text
        assert jobs[ok].result == {"doubled": 8, "by": "node-w"}
        dead = jobs[fail]
        assert dead.state is JobState.DEAD and dead.tries == 3, text
        assert dead.error is not None and dead.error.type == FAILURE
        assert dead.error.message == "node cannot process 4"
        thrown = jobs[bpmn]
        assert thrown.state is JobState.DEAD and thrown.error is not None
        assert thrown.error.type == BPMN_ERROR
        assert thrown.result == {
            "errorCode": "NEG",
            "errorMessage": "negative",
            "variables": {"rejected": 4},
        }
