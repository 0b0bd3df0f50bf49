"""``faena up`` listens before it says so: a taken port is an error naming it (exit 2) before
any worker starts, where it went on with no server at all."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

APP = """
import faena

app = faena.App(broker="sqlite:///up.db")


@app.task
def noop() -> None: ...
"""


def test_a_taken_port_stops_faena_up_before_any_worker(tmp_path: Path) -> None:
    (tmp_path / "upapp.py").write_text(APP)
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        done = subprocess.run(
            [sys.executable, "-m", "faena.cli.main", "up", "upapp:app", "--port", str(port)],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=tmp_path,
            env={"PYTHONPATH": f"{ROOT / 'src'}:{tmp_path}", "PATH": "/usr/bin:/bin"},
        )
    output = done.stdout + done.stderr
    assert done.returncode == 2, output
    assert f"127.0.0.1:{port}" in done.stderr and "already in use" in done.stderr
    assert "server.started" not in output
    assert "autoscale.started" not in output and "worker.started" not in output
