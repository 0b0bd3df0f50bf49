"""Real ``faena worker`` processes against each broker that can be shared by processes."""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.conftest import PG_URL, REDIS_URL, need, port_open

ROOT = Path(__file__).resolve().parents[2]


def broker_url(kind: str, tmp_path: Path) -> str:
    if kind == "sqlite":
        return f"sqlite:///{tmp_path / 'acc.db'}"
    if kind == "postgres":
        need(importlib.util.find_spec("faena.brokers.postgres") is not None, "no postgres broker")
        need(port_open("127.0.0.1", 5432), "PostgreSQL is not running on 127.0.0.1:5432")
        return f"{PG_URL}?schema=acc_{uuid.uuid4().hex[:10]}"
    need(importlib.util.find_spec("faena.brokers.redis") is not None, "no redis broker")
    need(port_open("127.0.0.1", 6379), "Redis is not running on 127.0.0.1:6379")
    return f"{REDIS_URL}?prefix=acc{uuid.uuid4().hex[:10]}"


@dataclass
class Cluster:
    """Worker processes of ``tests.acceptance.accapp`` sharing one broker."""

    url: str
    record: Path
    env: dict[str, str]
    tmp: Path
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    _app: object = None

    def app(self):  # type: ignore[no-untyped-def]
        """The test's producer app (one per test, so one connection pool)."""
        import faena

        if self._app is None:
            self._app = self.make_app()
        assert isinstance(self._app, faena.App)
        return self._app

    def make_app(self):  # type: ignore[no-untyped-def]
        import faena

        return faena.App(
            broker=self.url,
            pools={"limited": int(self.env.get("ACC_POOL_SIZE", "3"))},
            parallelism=int(self.env["ACC_PARALLELISM"])
            if self.env.get("ACC_PARALLELISM")
            else None,
        )

    def worker(
        self, *args: str, app: str = "tests.acceptance.accapp:app"
    ) -> subprocess.Popen[bytes]:
        """A ``faena worker`` process of ``app`` on queue ``acc``, with ``args``."""
        return self.worker_of(app, "--queues", "acc", *args)

    def worker_of(self, app: str, *args: str) -> subprocess.Popen[bytes]:
        """A ``faena worker`` process of ``app`` (module:attr) with ``args``."""
        n = len(self.procs)
        with open(self.tmp / f"worker-{n}.log", "wb") as out:  # the child keeps its copy
            proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "faena.cli.main",
                    "worker",
                    app,
                    "--log-format",
                    "json",
                    *args,
                ],
                cwd=ROOT,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        self.procs.append(proc)
        return proc

    def log(self, n: int) -> str:
        return (self.tmp / f"worker-{n}.log").read_text()

    def records(self) -> list[tuple[str, str, int, int, float]]:
        if not self.record.exists():
            return []
        out = []
        for line in self.record.read_text().splitlines():
            kind, job_id, attempt, pid, ts = line.split()
            out.append((kind, job_id, int(attempt), int(pid), float(ts)))
        return out

    def stop_all(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGKILL)
        for p in self.procs:
            p.wait(10)
        if self._app is not None:
            self._app.close()  # type: ignore[attr-defined]


@pytest.fixture(params=["sqlite", "postgres", "redis"])
def cluster(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Cluster]:
    url = broker_url(request.param, tmp_path)
    env = dict(
        os.environ,
        ACC_BROKER=url,
        ACC_RECORD=str(tmp_path / "record.log"),
        PYTHONPATH=os.pathsep.join([str(ROOT / "src"), str(ROOT)]),  # this tree's faena
        PYTHONUNBUFFERED="1",
    )
    c = Cluster(url, tmp_path / "record.log", env, tmp_path)
    yield c
    c.stop_all()


def wait_until(predicate, timeout: float, what: str, step: float = 0.1) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(step)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def max_overlap(records: list[tuple[str, str, int, int, float]]) -> int:
    """Most jobs between their ``start`` and ``end`` records at one instant."""
    points = sorted((ts, 1 if kind == "start" else -1) for kind, *_rest, ts in records)
    # at equal times count ends first: a job that ended as another started did not overlap
    points.sort(key=lambda p: (p[0], p[1]))
    cur = best = 0
    for _, delta in points:
        cur += delta
        best = max(best, cur)
    return best
