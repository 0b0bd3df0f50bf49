"""The real pyzeebe worker (PyPI 4.7) against a live ``faena server --zeebe-port`` on SQLite
and PostgreSQL: every outcome, a killed worker's job, competing workers, the example."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.conftest import need
from tests.integration.test_camunda_support import (
    Server,
    broker_url,
    free_port,
    running_server,
    wait_for,
    wait_settled,
)
from tests.integration.zeebe_support import TYPE, start_pyzeebe

import faena
from faena.core.states import JobState
from faena.zeebe.jobs import BPMN_ERROR, FAILURE

pytestmark = pytest.mark.slow
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "zeebe-worker" / "worker.py"
BROKERS = [pytest.param("sqlite"), pytest.param("postgres", marks=pytest.mark.postgres)]


class Zeebe:
    def __init__(self, server: Server, port: int) -> None:
        self.server = server
        self.address = f"127.0.0.1:{port}"


@pytest.fixture(params=BROKERS)
def zeebe(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Zeebe]:
    port = free_port()
    url = broker_url(request.param, tmp_path)
    with running_server(url, tmp_path, "--zeebe-port", str(port)) as srv:
        yield Zeebe(srv, port)


def _enqueue(zeebe: Zeebe, mode: str, n: int = 3, attempts: int = 4) -> str:
    app = zeebe.server.app()
    return app.enqueue(
        "order.process", kwargs={"mode": mode, "n": n}, queue=TYPE, retries=attempts - 1
    ).id


def test_complete_fail_until_dead_and_throw_error(zeebe: Zeebe, tmp_path: Path) -> None:
    ok = _enqueue(zeebe, "ok")
    fail = _enqueue(zeebe, "fail", attempts=3)
    bpmn = _enqueue(zeebe, "bpmn")
    worker = start_pyzeebe(tmp_path, zeebe.address, "w1", BACKOFF_MS="500")
    try:
        jobs = wait_settled(zeebe.server.app(), [ok, fail, bpmn], timeout=60)
    finally:
        worker.stop()
    log = worker.log.read_text()
    assert jobs[ok].state is JobState.SUCCEEDED, log
    assert jobs[ok].result == {"doubled": 6, "by": "w1", "doc": {"items": [1, 2]}}
    dead = jobs[fail]
    assert dead.state is JobState.DEAD and dead.tries == 3, log  # retries 3, 2, 1: three runs
    assert dead.error is not None and dead.error.type == FAILURE
    assert "boom: cannot process 3" in dead.error.message
    history = zeebe.server.app().broker.get(fail)
    assert history is not None and len(history.attempts) == 3
    starts = [a.started_at for a in history.attempts]
    ends = [a.finished_at for a in history.attempts]
    assert all(s is not None for s in starts) and all(e is not None for e in ends)
    # retryBackOff 500 ms: no retry started before its back-off (0.2 s of slack for the time
    # between the gateway's clock read and the store's stamp of the failure)
    assert all(s >= e + 0.3 for s, e in zip(starts[1:], ends[:-1], strict=True))  # type: ignore[operator]
    thrown = jobs[bpmn]
    assert thrown.state is JobState.DEAD and thrown.error is not None
    assert thrown.error.type == BPMN_ERROR and thrown.error.message.startswith("NEG")
    assert thrown.result["errorCode"] == "NEG" and thrown.tries == 1


def test_a_killed_workers_job_is_activated_again_after_its_timeout(
    zeebe: Zeebe, tmp_path: Path
) -> None:
    job_id = _enqueue(zeebe, "hang")
    handled = tmp_path / "handled.txt"
    first = start_pyzeebe(
        tmp_path, zeebe.address, "killed", HANDLED_LOG=str(handled), TIMEOUT_MS="1500"
    )
    try:
        wait_for(lambda: handled.exists() and "start" in handled.read_text(), 30, "activation")
    finally:
        first.stop(signal.SIGKILL)
    # the survivor does not hang: the job completes there
    second = start_pyzeebe(
        tmp_path, zeebe.address, "survivor", HANDLED_LOG=str(handled), NO_HANG="1"
    )
    try:
        jobs = wait_settled(zeebe.server.app(), [job_id], timeout=60)
    finally:
        second.stop()
    job = jobs[job_id]
    assert job.state is JobState.SUCCEEDED and job.tries == 2, second.log.read_text()
    lines = [line.split() for line in handled.read_text().splitlines()]
    assert [(w, what) for _, _, w, what in lines] == [
        ("killed", "start"),
        ("survivor", "start"),
        ("survivor", "done"),
    ]
    assert len({key for key, *_ in lines}) == 1  # the same key both times


def test_competing_workers_never_get_the_same_job(zeebe: Zeebe, tmp_path: Path) -> None:
    ids = [_enqueue(zeebe, "slow", n=i) for i in range(24)]
    handled = tmp_path / "handled.txt"
    workers = [
        start_pyzeebe(tmp_path, zeebe.address, f"c{i}", HANDLED_LOG=str(handled), MAX_JOBS="3")
        for i in range(3)
    ]
    try:
        jobs = wait_settled(zeebe.server.app(), ids, timeout=60)
    finally:
        for w in workers:
            w.stop()
    assert all(j.state is JobState.SUCCEEDED and j.tries == 1 for j in jobs.values())
    starts = Counter(
        int(n)
        for _, n, _, what in map(str.split, handled.read_text().splitlines())
        if what == "start"
    )
    assert set(starts) == set(range(24)) and max(starts.values()) == 1, starts.most_common(3)
    assert len({j.worker for j in jobs.values()}) >= 2  # the work was shared


def test_the_example_worker(zeebe: Zeebe, tmp_path: Path) -> None:
    app = zeebe.server.app()
    good = app.enqueue(
        "order.process", kwargs={"orderId": "1234", "amount": 20}, queue="process-order"
    )
    bad = app.enqueue("order.process", kwargs={"orderId": "9", "amount": -1}, queue="process-order")
    env = {**os.environ, "ZEEBE_ADDRESS": zeebe.address}
    log = tmp_path / "example.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, str(EXAMPLE)], env=env, stdout=out, stderr=out)
    try:
        jobs = wait_settled(app, [good.id, bad.id], timeout=60)
    finally:
        proc.terminate()
        proc.wait(15)
    assert jobs[good.id].state is JobState.SUCCEEDED, log.read_text()
    assert jobs[good.id].result == {"orderId": "1234", "processed": True}
    assert (
        jobs[bad.id].state is JobState.DEAD
        and jobs[bad.id].result["errorCode"] == "NEGATIVE_AMOUNT"
    )


def _self_signed(tmp_path: Path) -> tuple[Path, Path]:
    need(shutil.which("openssl") is not None, "openssl is not installed (for a test certificate)")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
            "-keyout", str(key), "-out", str(cert),
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert, key


def test_tls_and_the_servers_token_as_a_bearer(tmp_path: Path) -> None:
    cert, key = _self_signed(tmp_path)
    port = free_port()
    extra = ("--token", "s3cret", "--zeebe-port", str(port), "--zeebe-cert", str(cert))
    url = broker_url("sqlite", tmp_path)
    with running_server(url, tmp_path, *extra, "--zeebe-key", str(key)) as srv:
        job = srv.app().enqueue("order.process", kwargs={"mode": "ok", "n": 5}, queue=TYPE)
        address = f"localhost:{port}"
        refused = start_pyzeebe(tmp_path, address, "no-token", CA=str(cert), TOKEN="wrong")
        worker = start_pyzeebe(tmp_path, address, "tls", CA=str(cert), TOKEN="s3cret")
        try:
            jobs = wait_settled(srv.app(), [job.id], timeout=60)
        finally:
            worker.stop()
            refused.stop()
        assert jobs[job.id].state is JobState.SUCCEEDED and jobs[job.id].worker == "tls"
        assert "StatusCode.UNAUTHENTICATED" in refused.log.read_text()


UP_APP = """
import faena

app = faena.App(broker="sqlite:///up.db")


@app.task(queue="work")
def double(n: int) -> int:
    return 2 * n
"""


def test_faena_up_serves_the_zeebe_gateway(tmp_path: Path) -> None:
    (tmp_path / "upapp.py").write_text(UP_APP)
    port = free_port()
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root / "src"), str(tmp_path)])}
    log = tmp_path / "up.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "faena.cli.main", "up", "upapp:app", "--port", "0",
             "--zeebe-port", str(port), "--no-auth", "--log-format", "json"],
            cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    app = faena.App(broker=f"sqlite:///{tmp_path / 'up.db'}")
    worker = None
    try:

        def started() -> bool:
            assert proc.poll() is None, log.read_text()
            return '"up.started"' in log.read_text()

        wait_for(started, 60, "faena up to log up.started")
        zeebe = [json.loads(x) for x in log.read_text().splitlines() if '"zeebe.started"' in x]
        assert [e["port"] for e in zeebe] == [port]
        job = app.enqueue("order.process", kwargs={"mode": "ok", "n": 1}, queue=TYPE)
        worker = start_pyzeebe(tmp_path, f"127.0.0.1:{port}", "up-w")
        jobs = wait_settled(app, [job.id], timeout=60)
        assert jobs[job.id].state is JobState.SUCCEEDED and jobs[job.id].result["doubled"] == 2
    finally:
        if worker is not None:
            worker.stop()
        app.close()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0, log.read_text()
    assert '"zeebe.stopped"' in log.read_text()
