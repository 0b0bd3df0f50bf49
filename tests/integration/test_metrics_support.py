"""Shared by the observability integration tests (no tests here): a small app with every
outcome (success, retry, dead, timeout, process isolation) and helpers to run real workers."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FAENA = str(ROOT / ".venv" / "bin" / "faena")

APP_SOURCE = """
import time

import faena

app = faena.App(pools={"etl_pool": 4, "dq_pool": 2}, parallelism=8)


@app.task(name="etl.load", queue="etl_pool", pool="etl_pool", retries=0)
def load(table, ms=10):
    time.sleep(ms / 1000)
    return {"table": table}


@app.task(name="etl.flaky", queue="etl_pool", pool="etl_pool", retries=2, backoff_base=0.05,
          backoff_cap=0.1)
def flaky(table):
    job = faena.current_job()
    if job is not None and job.attempt < 2:
        raise ConnectionError(f"warehouse busy loading {table}")
    return table


@app.task(name="dq.check", queue="dq", pool="dq_pool", retries=0)
def check(table, ok=True):
    if not ok:
        raise ValueError(f"row count mismatch in {table}")
    return True


@app.task(name="etl.stuck", queue="etl_pool", pool="etl_pool", retries=0, timeout=0.5,
          isolation="process")
def stuck():
    time.sleep(30)


@app.task(name="etl.isolated", queue="etl_pool", pool="etl_pool", retries=0,
          isolation="process")
def isolated(n):
    if n < 0:
        raise ArithmeticError("negative input")
    return n * 2


@app.task(name="etl.long", queue="etl_pool", pool="etl_pool", retries=0)
def long(seconds):
    time.sleep(seconds)
"""


def write_app(folder: Path, name: str = "obsapp") -> str:
    (folder / f"{name}.py").write_text(APP_SOURCE)
    return f"{name}:app"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def env_for(folder: Path, broker_url: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(folder), str(ROOT / "src")])
    env["FAENA_BROKER_URL"] = broker_url
    env["FAENA_LOG_FORMAT"] = "json"
    env.pop("FAENA_METRICS_PORT", None)
    return env


def start_worker(
    folder: Path,
    app_path: str,
    broker_url: str,
    *args: str,
    stdout: int | None = subprocess.PIPE,
) -> subprocess.Popen[str]:
    """``faena worker APP ...`` as a real process, JSON logs on stdout."""
    return subprocess.Popen(
        [FAENA, "worker", app_path, "--broker", broker_url, *args],
        cwd=folder,
        env=env_for(folder, broker_url),
        stdout=stdout,
        stderr=subprocess.PIPE,
        text=True,
    )


def stop_worker(proc: subprocess.Popen[str], timeout: float = 20) -> tuple[str, str]:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
    return out or "", err or ""


def wait_for(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def http_get(url: str, timeout: float = 5) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return int(r.status), r.read().decode()
    except urllib.error.HTTPError as e:
        return int(e.code), e.read().decode()
    except OSError:
        return 0, ""


def python() -> str:
    return sys.executable
