"""Every command of the README's shell block works as written, in a folder laid out as the
README says (``myproject/jobs.py`` from its Python block, beside a clone's ``deploy/`` and
``tests/``), with the real ``faena`` executable. The long-running ones run until they said
they started, then get SIGTERM and must exit 0. Fixed ports are swapped for free ones."""

from __future__ import annotations

import json
import os
import re
import selectors
import shlex
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest

import faena

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
BIN = Path(sys.executable).parent  # the venv's bin: its `faena` is the one the README means
LONG_RUNNING = {"worker": "worker.started", "server": "server.started", "up": "autoscale.started"}
LONG_RUNNING["autoscale"] = "autoscale.started"


def shell_commands() -> list[str]:
    block = re.search(r"```sh\n(faena worker.*?)```", README.read_text(), re.S)
    assert block is not None
    text = block.group(1).replace("\\\n", " ")
    return [line.split("  #")[0].strip() for line in text.splitlines() if line.strip()]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def project(folder: Path) -> dict[str, str]:
    jobs = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)[0]
    (folder / "myproject").mkdir()
    (folder / "myproject" / "__init__.py").write_text("")
    (folder / "myproject" / "jobs.py").write_text(jobs)
    for name in ("deploy", "tests"):
        (folder / name).symlink_to(ROOT / name)
    env = {k: v for k, v in os.environ.items() if not k.startswith("FAENA_")}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), str(folder)])
    env["FAENA_LOG_FORMAT"] = "json"
    env["FAENA_PORT"] = str(free_port())  # the README's server binds the default 8080
    return env


def healthy(port: str) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as answer:
            return bool(answer.status == 200)
    except OSError:
        return False


def run_once(command: str, folder: Path, env: dict[str, str]) -> str:
    done = subprocess.run(
        shlex.split(command), cwd=folder, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, (command, done.stdout, done.stderr)
    assert "Traceback" not in done.stderr, command
    return done.stdout


def run_until_started(
    command: str,
    event: str,
    folder: Path,
    env: dict[str, str],
    until: Callable[[], bool] = lambda: True,
) -> None:
    proc = subprocess.Popen(
        shlex.split(command),
        cwd=folder,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    assert proc.stdout is not None
    seen: list[bytes] = []
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            if sel.select(timeout=1):
                line = proc.stdout.readline()
                seen.append(line)
                if f'"event": "{event}"'.encode() in line:
                    break
        else:
            proc.kill()
            raise AssertionError(f"{command}: no {event}: {b''.join(seen).decode()}")
    deadline = time.monotonic() + 60
    while not until() and time.monotonic() < deadline:
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=60)
    # uvicorn (faena server) ends by re-raising the SIGTERM it handled: killed by it, cleanly
    stopped = (0, -signal.SIGTERM) if command.split()[1] == "server" else (0,)
    assert proc.returncode in stopped, (command, proc.returncode, b"".join(seen) + out)


@pytest.mark.slow
def test_every_readme_command_works_as_written(tmp_path: Path) -> None:
    env = project(tmp_path)
    commands = shell_commands()
    assert any(c.startswith("faena up ") for c in commands)
    enqueue = next(c for c in commands if c.startswith("faena enqueue "))
    job_id = run_once(enqueue, tmp_path, env).strip()
    # a second job, cancelled: what `faena jobs retry JOB_ID` runs again
    other = run_once(enqueue.replace("2026-11-27", "2026-11-28"), tmp_path, env).strip()
    run_once(f"faena jobs cancel {other}", tmp_path, env)

    def state(job: str) -> str:
        app = faena.App(broker=f"sqlite:///{tmp_path / 'faena.db'}")
        app.open_existing()
        try:
            return app.job(job).job.state.value
        finally:
            app.close()

    for command in commands:
        if command.startswith("faena enqueue "):
            continue
        command = command.replace("JOB_ID", other)
        for port in re.findall(r"--metrics-port (\d+)", command):
            command = command.replace(f"--metrics-port {port}", f"--metrics-port {free_port()}")
        command = command.replace("--out sim/", f"--out {tmp_path / 'sim'}")
        verb = command.split()[1]
        if verb in LONG_RUNNING:
            until = {
                "worker": lambda: state(job_id) == "succeeded",
                "server": lambda: healthy(env["FAENA_PORT"]),  # uvicorn handles SIGTERM
                "up": lambda: healthy(env["FAENA_PORT"]),
            }.get(verb, lambda: True)
            run_until_started(command, LONG_RUNNING[verb], tmp_path, env, until)
        else:
            run_once(command, tmp_path, env)
    listed = json.loads(run_once("faena jobs list --json", tmp_path, env))
    states = {j["id"]: j["state"] for j in listed}
    assert states[job_id] == "succeeded"  # the first worker line ran it
    assert states[other] == "queued"  # cancelled, then run again by `faena jobs retry`
