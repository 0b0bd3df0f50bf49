"""Shared by the Camunda integration tests (no tests here): a live ``faena server`` subprocess
per broker, the real clients installed once per machine, and worker scripts for each client.

Every worker script picks what to do from the task's ``mode`` variable, so one worker process
shows every outcome: ok, flaky (fail with retries, then succeed), fatal (retries 0), bpmn,
slow (extendLock while working) and hang (never answers; for lock expiry).
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.conftest import PG_URL, need, port_open
from tests.integration.node_support import npm_installed

import faena
from faena.core.job import Job
from faena.core.states import TERMINAL

ROOT = Path(__file__).resolve().parents[2]
NODE_EXAMPLE = ROOT / "examples" / "node-worker"
PY_CLIENT = "camunda-external-task-client-python3==4.5.0"
JS_CLIENT_VERSION = "3.1.0"
TOPIC = "process-order"


# brokers and the server ----------------------------------------------------------------------
def broker_url(kind: str, tmp_path: Path) -> str:
    if kind == "sqlite":
        return f"sqlite:///{tmp_path / 'faena.db'}"
    need(
        importlib.util.find_spec("faena.brokers.postgres") is not None,
        "the PostgreSQL broker (faena.brokers.postgres) is not importable yet",
    )
    need(port_open("127.0.0.1", 5432), "PostgreSQL is not running on 127.0.0.1:5432")
    sep = "&" if "?" in PG_URL else "?"
    return f"{PG_URL}{sep}schema=cam_{uuid.uuid4().hex[:12]}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(check: Callable[[], Any], timeout: float, what: str, every: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(every)


@dataclass
class Server:
    url: str  # http://127.0.0.1:PORT
    broker: str
    proc: subprocess.Popen[bytes]
    log: Path
    apps: list[faena.App] = field(default_factory=list)  # closed with the server

    @property
    def engine(self) -> str:
        return f"{self.url}/engine-rest"

    def app(self) -> faena.App:
        self.apps.append(faena.App(broker=self.broker))
        return self.apps[-1]


@contextlib.contextmanager
def running_server(
    broker: str, log_dir: Path, *extra: str, port: int | None = None
) -> Iterator[Server]:
    port = port or free_port()
    log = log_dir / f"server-{port}-{time.monotonic_ns()}.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "faena.cli.main",
                "server",
                "--broker",
                broker,
                "--port",
                str(port),
                "--log-format",
                "json",
                *extra,
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=log_dir,
        )
    server = Server(f"http://127.0.0.1:{port}", broker, proc, log)
    try:

        def up() -> bool:
            if proc.poll() is not None:
                raise AssertionError(f"faena server exited: {log.read_text()}")
            with (
                contextlib.suppress(OSError),
                urllib.request.urlopen(f"{server.url}/healthz", timeout=1) as r,
            ):
                return bool(r.status == 200)
            return False

        wait_for(up, 20, "faena server /healthz")
        yield server
    finally:
        for app in server.apps:
            app.close()
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# jobs ------------------------------------------------------------------------------------------
def enqueue(app: faena.App, mode: str, **kwargs: Any) -> str:
    return app.enqueue("order.process", kwargs={"mode": mode, "n": 3, **kwargs}, queue=TOPIC).id


def settled(app: faena.App, job_id: str) -> Job | None:
    job = app.broker.get(job_id)
    assert job is not None
    return job if job.state in TERMINAL else None


def wait_settled(app: faena.App, ids: list[str], timeout: float = 60) -> dict[str, Job]:
    def all_done() -> dict[str, Job] | None:
        jobs = {i: settled(app, i) for i in ids}
        return None if any(j is None for j in jobs.values()) else jobs  # type: ignore[return-value]

    done: dict[str, Job] = wait_for(all_done, timeout, f"jobs {ids} to settle", every=0.2)
    return done


def http(
    method: str,
    url: str,
    body: Any = None,
    raw: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, str], bytes]:
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    hdrs = {"Content-Type": "application/json"} if data is not None else {}
    hdrs.update(headers or {})
    req = urllib.request.Request(url, data=data, method=method, headers=hdrs)
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, {k.lower(): v for k, v in r.headers.items()}, r.read()
    except urllib.error.HTTPError as e:
        return e.code, {k.lower(): v for k, v in e.headers.items()}, e.read()


# real clients ------------------------------------------------------------------------------------
def python_client() -> Path:
    """A venv with the PyPI Camunda client (and pydantic, which it imports but does not
    declare); made once per machine in the temp folder."""
    home = Path(tempfile.gettempdir()) / "faena-camunda-client-python3-4.5.0"
    python = home / "bin" / "python"
    probe = [str(python), "-c", "import camunda.external_task.external_task_worker"]
    if python.exists() and subprocess.run(probe, capture_output=True).returncode == 0:
        return python
    shutil.rmtree(home, ignore_errors=True)
    subprocess.run([sys.executable, "-m", "venv", str(home)], check=True)
    pip = subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", PY_CLIENT, "pydantic>=2,<3"],
        capture_output=True,
        text=True,
    )
    need(pip.returncode == 0, f"cannot install {PY_CLIENT}: {pip.stderr[-500:]}")
    return python


def node_worker() -> Path:
    """A copy of examples/node-worker with its npm dependencies installed (Node 20)."""
    need(shutil.which("node") is not None, "Node.js is not installed")
    version = subprocess.run(["node", "--version"], capture_output=True, text=True).stdout
    need(int(version.strip().lstrip("v").split(".")[0]) >= 20, f"Node {version} < 20")
    home = npm_installed(
        NODE_EXAMPLE,
        f"faena-node-worker-{JS_CLIENT_VERSION}",
        "camunda-external-task-client-js/package.json",
        "camunda-external-task-client-js",
    )
    marker = home / "node_modules" / "camunda-external-task-client-js" / "package.json"
    assert json.loads(marker.read_text())["version"] == JS_CLIENT_VERSION
    return home


PY_WORKER = r"""
import json, os, sys, time
import requests
from camunda.external_task.external_task_worker import ExternalTaskWorker

BASE = os.environ["BASE_URL"]
WID = os.environ["WORKER_ID"]
LOCK = int(os.environ.get("LOCK_MS", "30000"))
config = {"maxTasks": int(os.environ.get("MAX_TASKS", "1")), "lockDuration": LOCK,
          "asyncResponseTimeout": 3000, "retries": 3, "retryTimeout": 100, "sleepSeconds": 1}
if os.environ.get("CAMUNDA_USER"):
    config["auth_basic"] = {"username": os.environ["CAMUNDA_USER"],
                            "password": os.environ["CAMUNDA_PASSWORD"]}


def handle(task):
    if os.environ.get("HANDLED_LOG"):
        with open(os.environ["HANDLED_LOG"], "a") as f:
            f.write(f"{task.get_task_id()} {WID}\n")
    mode = task.get_variable("mode") or "ok"
    n = task.get_variable("n") or 0
    retries = task._context.get("retries")
    if mode == "flaky" and (retries is None or retries > 1):
        return task.failure("flaky: try again", f"retries={retries}", max_retries=2,
                            retry_timeout=100)
    if mode == "fatal":
        return task.failure("fatal: cannot process", "Traceback: fatal", max_retries=0,
                            retry_timeout=0)
    if mode == "bpmn":
        return task.bpmn_error("NEG", "negative amount", {"rejected": n})
    if mode == "hang":
        time.sleep(3600)
    if mode == "slow":
        until = time.time() + float(task.get_variable("seconds") or 3)
        while time.time() < until:
            time.sleep(min(LOCK / 3000, max(until - time.time(), 0)))
            if time.time() < until:  # this client has no extendLock: call the endpoint
                requests.post(f"{BASE}/external-task/{task.get_task_id()}/extendLock",
                              json={"workerId": WID, "newDuration": LOCK}).raise_for_status()
    return task.complete({
        "doubled": {"value": n * 2, "type": "Integer"},
        "flag": {"value": True, "type": "Boolean"},
        "ratio": {"value": 1.5, "type": "Double"},
        "label": f"done by {WID}",
        "doc": {"value": json.dumps({"items": [1, 2], "ok": True}), "type": "Json"},
    })


ExternalTaskWorker(worker_id=WID, base_url=BASE, config=config).subscribe(
    [os.environ.get("TOPIC", "process-order")], handle)
"""

FAENA_WORKER = r"""
import os, time
from faena.camunda import BpmnError, ExternalTaskClient

WID = os.environ["WORKER_ID"]
LOCK = int(os.environ.get("LOCK_MS", "30000")) / 1000
auth = None
if os.environ.get("CAMUNDA_USER"):
    auth = (os.environ["CAMUNDA_USER"], os.environ["CAMUNDA_PASSWORD"])


def handle(task):
    if os.environ.get("HANDLED_LOG"):
        with open(os.environ["HANDLED_LOG"], "a") as f:
            f.write(f"{task.id} {WID}\n")
    mode = task.get_variable("mode", "ok")
    n = task.get_variable("n", 0)
    if mode == "flaky" and (task.retries is None or task.retries > 1):
        raise RuntimeError("flaky: try again")
    if mode == "fatal":
        raise ValueError("fatal: cannot process")
    if mode == "bpmn":
        raise BpmnError("NEG", "negative amount", {"rejected": n})
    if mode == "hang":
        time.sleep(3600)
    if mode == "slow":
        time.sleep(float(task.get_variable("seconds", 3)))  # the client extends the lock
    return {"doubled": n * 2, "flag": True, "ratio": 1.5, "label": f"done by {WID}",
            "doc": {"items": [1, 2], "ok": True}}


client = ExternalTaskClient(os.environ["BASE_URL"], worker_id=WID, lock_duration=LOCK,
                            max_tasks=int(os.environ.get("MAX_TASKS", "4")),
                            async_response_timeout=3, auth=auth,
                            grace=float(os.environ.get("GRACE", "2")))
client.subscribe(os.environ.get("TOPIC", "process-order"), handle, retries=2,
                 backoff_base=0.05, backoff_cap=0.1, retry_on=[RuntimeError])
"""


@dataclass
class Worker:
    proc: subprocess.Popen[bytes]
    log: Path

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def start_worker(kind: str, server: Server, tmp: Path, worker_id: str, **env: str) -> Worker:
    """Start a real client of ``kind`` (node, python3, faena) against ``server``."""
    full = {**os.environ, "BASE_URL": server.engine, "WORKER_ID": worker_id, "TOPIC": TOPIC, **env}
    log = tmp / f"worker-{worker_id}.log"
    if kind == "node":
        home = node_worker()
        cmd, cwd = ["node", "worker.js"], home
        full.setdefault("INTERVAL_MS", "100")
    elif kind == "python3":
        script = tmp / "py_worker.py"
        script.write_text(PY_WORKER)
        cmd, cwd = [str(python_client()), str(script)], tmp
    else:
        script = tmp / "faena_worker.py"
        script.write_text(FAENA_WORKER)
        cmd, cwd = [sys.executable, str(script)], tmp
    with open(log, "ab") as out:
        proc = subprocess.Popen(cmd, cwd=cwd, env=full, stdout=out, stderr=subprocess.STDOUT)
    return Worker(proc, log)
