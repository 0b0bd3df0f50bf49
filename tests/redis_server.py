"""A ``redis-server`` owned by one test (never the shared one on 6379): for restarts."""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import need


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class RedisServer:
    """A ``redis-server`` of the test's own: never the shared one on 6379."""

    def __init__(self, binary: str, port: int, data: Path) -> None:
        self.binary, self.port, self.data = binary, port, data
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                self.binary,
                "--port", str(self.port),
                "--bind", "127.0.0.1",
                "--appendonly", "yes",
                "--appendfsync", "always",
                "--save", "",
                "--dir", str(self.data),
                "--logfile", str(self.data / "redis.log"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and self.proc.poll() is None:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(64).startswith(b"+PONG"):
                        return
            except OSError:
                pass
            time.sleep(0.02)
        raise RuntimeError(f"redis-server did not start on port {self.port}: see redis.log")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)

    def outage(self, down: float) -> None:
        self.stop()
        time.sleep(down)
        self.start()


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A fresh ``redis-server`` with AOF (``appendfsync always``) on a free port."""
    binary = shutil.which("redis-server")
    need(binary is not None, "redis-server is not installed")
    assert binary is not None
    data = tmp_path / "redis"
    data.mkdir()
    server = RedisServer(binary, free_port(), data)
    server.start()
    yield server
    server.stop()
