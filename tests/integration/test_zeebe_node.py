"""The official Camunda 8 Node client (npm ``@camunda8/sdk`` 8.8.13) working faena jobs
through ``faena server --zeebe-port``: its polling worker and its job stream, with the
server's token as the SDK's bearer (``CAMUNDA_AUTH_STRATEGY=BEARER``)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.integration.node_support import npm_installed
from tests.integration.test_camunda_support import (
    Server,
    broker_url,
    free_port,
    running_server,
    wait_for,
    wait_settled,
)
from tests.integration.zeebe_support import TYPE, Worker, start_pyzeebe

from faena.core.states import JobState
from faena.zeebe.jobs import BPMN_ERROR, FAILURE

pytestmark = [pytest.mark.slow, pytest.mark.node]
SDK_VERSION = "8.8.13"
HERE = Path(__file__).resolve().parent / "zeebe_node"
BROKERS = [pytest.param("sqlite"), pytest.param("postgres", marks=pytest.mark.postgres)]
TOKEN = "s3cret"


def node_worker() -> Path:
    """A copy of tests/integration/zeebe_node with its npm dependencies installed."""
    home = npm_installed(
        HERE, f"faena-zeebe-node-{SDK_VERSION}", "@camunda8/sdk/package.json", "@camunda8/sdk"
    )
    marker = home / "node_modules" / "@camunda8" / "sdk" / "package.json"
    assert json.loads(marker.read_text())["version"] == SDK_VERSION
    return home


def start_node(home: Path, tmp: Path, port: int, name: str, **env: str) -> Worker:
    full = {
        **os.environ,
        "ZEEBE_GRPC_ADDRESS": f"grpc://127.0.0.1:{port}",
        "CAMUNDA_AUTH_STRATEGY": "BEARER",
        "CAMUNDA_OAUTH_TOKEN": TOKEN,
        "TYPE": TYPE,
        "WORKER_NAME": name,
        **env,
    }
    log = tmp / f"node-{name}.log"
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            ["node", "worker.js"], cwd=home, env=full, stdout=out, stderr=subprocess.STDOUT
        )
    return Worker(proc, log)


def handled(*workers: Worker) -> list[list[str]]:
    """The ``handled KEY N WORKER what`` lines the workers printed (pyzeebe's go to a file)."""
    return [
        line.split()[1:]
        for w in workers
        for line in w.log.read_text().splitlines()
        if line.startswith("handled ")
    ]


@pytest.fixture(params=BROKERS)
def server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Server, int]]:
    port = free_port()
    url = broker_url(request.param, tmp_path)
    with running_server(url, tmp_path, "--token", TOKEN, "--zeebe-port", str(port)) as srv:
        yield srv, port


@pytest.mark.parametrize("stream", ["0", "1"], ids=["poll", "stream"])
def test_the_node_job_worker_completes_fails_and_throws(
    server: tuple[Server, int], stream: str, tmp_path: Path
) -> None:
    home = node_worker()
    srv, port = server
    app = srv.app()

    def job(mode: str, retries: int = 3) -> str:
        kwargs = {"mode": mode, "n": 4}
        return app.enqueue("order.process", kwargs=kwargs, queue=TYPE, retries=retries).id

    ok, fail, bpmn = job("ok"), job("fail", retries=2), job("bpmn")
    worker = start_node(home, tmp_path, port, "node-w", STREAM=stream)
    try:
        jobs = wait_settled(app, [ok, fail, bpmn], timeout=60)
    finally:
        worker.stop()
    text = worker.log.read_text()
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


def test_a_killed_node_workers_job_is_activated_again_after_its_timeout(
    server: tuple[Server, int], tmp_path: Path
) -> None:
    home = node_worker()
    srv, port = server
    job_id = srv.app().enqueue("order.process", kwargs={"mode": "hang", "n": 1}, queue=TYPE).id
    first = start_node(home, tmp_path, port, "killed", TIMEOUT_MS="1500")
    try:
        wait_for(lambda: handled(first), 30, "the first node worker to get the job")
    finally:
        first.stop(signal.SIGKILL)
    second = start_node(home, tmp_path, port, "survivor", NO_HANG="1")
    try:
        jobs = wait_settled(srv.app(), [job_id], timeout=60)
    finally:
        second.stop()
    assert jobs[job_id].state is JobState.SUCCEEDED and jobs[job_id].tries == 2
    assert jobs[job_id].result["by"] == "survivor"
    lines = handled(first, second)
    assert [w for _, _, w, _ in lines] == ["killed", "survivor"]
    assert len({key for key, *_ in lines}) == 1


def test_node_and_python_workers_compete_with_no_job_given_to_two(
    server: tuple[Server, int], tmp_path: Path
) -> None:
    home = node_worker()
    srv, port = server
    app = srv.app()
    ids = [
        app.enqueue("order.process", kwargs={"mode": "slow", "n": i}, queue=TYPE).id
        for i in range(24)
    ]
    log = tmp_path / "pyzeebe-handled.txt"
    nodes = [start_node(home, tmp_path, port, f"n{i}", MAX_JOBS="3") for i in range(2)]
    python = start_pyzeebe(
        tmp_path, f"127.0.0.1:{port}", "py", HANDLED_LOG=str(log), MAX_JOBS="3", TOKEN=TOKEN
    )
    try:
        jobs = wait_settled(app, ids, timeout=60)
    finally:
        for w in [*nodes, python]:
            w.stop()
    assert all(j.state is JobState.SUCCEEDED and j.tries == 1 for j in jobs.values())
    starts = [int(n) for _, n, _, what in handled(*nodes) if what == "start"]
    if log.exists():
        starts += [int(n) for _, n, _, what in map(str.split, log.read_text().splitlines())
                   if what == "start"]  # fmt: skip
    counts = Counter(starts)
    assert set(counts) == set(range(24)) and max(counts.values()) == 1, counts.most_common(3)
    assert len({j.worker for j in jobs.values()}) >= 2
