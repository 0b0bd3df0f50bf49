"""A broker that answers but refuses every write, under a real ``faena worker`` process.

Redis at ``maxmemory`` with ``noeviction`` or demoted to a read-only replica, PostgreSQL with
``default_transaction_read_only=on``: every claim, finish, heartbeat and reap fails at once
(no reconnect to wait for). The worker used to call again every fraction of a millisecond (its
back-off did not wait) and died of an ``OverflowError`` after 1,024 failures, within about a
second. Now it stays alive, logs the outage once (and once when it ends), answers 503 on
``/readyz`` meanwhile, holds the results of the jobs that ended, and when the broker takes
writes again reports them, runs new jobs and answers 200.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import PG_URL, need, port_open
from tests.redis_server import RedisServer, free_port

import faena
from faena.core.states import JobState

ROOT = Path(__file__).resolve().parents[2]
JOBS = 6
HELD_SECONDS = 3.0  # how long the broker refuses writes: many back-offs, a few seconds


def readyz(port: int) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as r:
            return int(r.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except OSError:
        return 0


def wait_until(predicate: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


class WorkerProcess:
    def __init__(self, url: str, tmp: Path, lease: float = 30.0) -> None:
        self.port = free_port()
        self.log_path = tmp / "worker.log"
        env = dict(
            os.environ,
            ACC_BROKER=url,
            ACC_RECORD=str(tmp / "record.log"),
            ACC_LEASE=str(lease),  # 30 s: longer than the outage, no lease runs out meanwhile
            PYTHONPATH=os.pathsep.join([str(ROOT / "src"), str(ROOT)]),  # this tree's faena
            PYTHONUNBUFFERED="1",
        )
        with open(self.log_path, "wb") as out:
            self.proc = subprocess.Popen(
                [
                    sys.executable, "-m", "faena.cli.main", "worker",
                    "tests.acceptance.accapp:app", "--queues", "acc", "--concurrency", "2",
                    "--log-format", "json", "--metrics-port", str(self.port),
                    "--metrics-addr", "127.0.0.1",
                ],
                cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip

    def events(self) -> list[dict[str, Any]]:
        out = []
        for line in self.log_path.read_text().splitlines():
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if isinstance(entry, dict):
                out.append(entry)
        return out

    def named(self, name: str) -> list[dict[str, Any]]:
        return [e for e in self.events() if e.get("event") == name]

    def alive(self) -> bool:
        if self.proc.poll() is None:
            return True
        raise AssertionError(
            f"the worker exited with {self.proc.returncode}: {self.log_path.read_text()[-3000:]}"
        )

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)


def ride_out(url: str, tmp: Path, refuse: Callable[[], None], accept: Callable[[], None]) -> None:
    app = faena.App(broker=url)
    app.broker.setup()
    worker = WorkerProcess(url, tmp)
    try:
        wait_until(lambda: worker.alive() and readyz(worker.port) == 200, "readiness")
        # the jobs run through the outage: they end while the broker refuses their reports
        handles = app.enqueue_many("sleep", [([1.0], {}) for _ in range(JOBS)], queue="acc")
        wait_until(lambda: (tmp / "record.log").exists(), "a job to start")
        refuse()
        wait_until(lambda: worker.alive() and worker.named("worker.broker_unavailable"), "log")
        wait_until(lambda: readyz(worker.port) == 503, "/readyz 503")
        seen_at = len(worker.events())
        time.sleep(HELD_SECONDS)
        assert worker.alive()
        assert readyz(worker.port) == 503
        # one line when the outage began (a reminder comes after a minute only), none a call
        assert len(worker.named("worker.broker_unavailable")) == 1
        assert len(worker.events()) - seen_at < 10, worker.events()[seen_at:]
        down = worker.named("worker.broker_unavailable")[0]
        assert down["status"] == "broker_unavailable" and down["error_message"]

        accept()
        wait_until(lambda: worker.alive() and readyz(worker.port) == 200, "/readyz 200", 60)
        states = [h.wait(timeout=60) and h.refresh().state for h in handles]
        assert states == [JobState.SUCCEEDED] * JOBS
        assert app.enqueue("sleep", [0.01], queue="acc").wait(timeout=30) == "slept"
        [up] = worker.named("worker.broker_recovered")
        assert up["failed_calls"] >= 1 and up["duration_ms"] > 0
        assert not worker.named("worker.error")
        assert not worker.named("postgres.retry")  # the client's retries: not a line each
        worker.proc.send_signal(signal.SIGTERM)
        assert worker.proc.wait(30) == 0
    finally:
        worker.kill()
        app.close()


# Redis ----------------------------------------------------------------------------------------
@pytest.fixture
def private_redis(redis_server: RedisServer) -> Iterator[tuple[str, Any]]:
    import redis

    client = redis.Redis(port=redis_server.port, decode_responses=True)
    yield f"redis://127.0.0.1:{redis_server.port}/0?prefix=refuse{uuid.uuid4().hex[:6]}", client
    client.close()


@pytest.mark.redis
def test_a_worker_rides_out_redis_at_maxmemory(private_redis: tuple[str, Any], tmp_path: Path):
    url, admin = private_redis

    def full() -> None:  # below what is used already: every write is refused (OOM)
        admin.config_set("maxmemory-policy", "noeviction")
        admin.config_set("maxmemory", "1")

    ride_out(url, tmp_path, full, lambda: admin.config_set("maxmemory", "0"))


@pytest.mark.redis
def test_a_worker_rides_out_redis_demoted_to_a_replica(
    private_redis: tuple[str, Any], tmp_path: Path
):
    url, admin = private_redis
    nowhere = free_port()  # a master that never answers: the data stay, writes are refused

    ride_out(
        url,
        tmp_path,
        lambda: admin.execute_command("REPLICAOF", "127.0.0.1", str(nowhere)),
        lambda: admin.execute_command("REPLICAOF", "NO", "ONE"),
    )


# PostgreSQL -----------------------------------------------------------------------------------
@pytest.fixture
def read_only_role() -> Iterator[tuple[str, Callable[[bool], None]]]:
    """A login role of the test's own whose sessions can be made read-only (ALTER ROLE ... SET
    default_transaction_read_only), their connections cut so that the worker reconnects."""
    need(port_open("127.0.0.1", 5432), "PostgreSQL is not running on 127.0.0.1:5432")
    import psycopg

    role = f"faena_ro_{uuid.uuid4().hex[:10]}"
    admin = psycopg.connect(PG_URL, autocommit=True)
    admin.execute(f"CREATE ROLE {role} LOGIN")
    database = admin.execute("SELECT current_database()").fetchone()[0]  # type: ignore[index]
    admin.execute(f'GRANT CONNECT, CREATE ON DATABASE "{database}" TO {role}')
    base = PG_URL.split("://", 1)[1].split("@", 1)[-1]
    url = f"postgresql://{role}@{base}?schema=s_{role}"

    def read_only(on: bool) -> None:
        setting = "SET default_transaction_read_only = on" if on else "RESET ALL"
        admin.execute(f"ALTER ROLE {role} {setting}")
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s", [role]
        )

    try:
        yield url, read_only
    finally:
        read_only(False)
        admin.execute(f'DROP SCHEMA IF EXISTS "s_{role}" CASCADE')
        admin.execute(f'REVOKE ALL ON DATABASE "{database}" FROM {role}')
        admin.execute(f"DROP ROLE {role}")
        admin.close()


@pytest.mark.postgres
def test_a_worker_rides_out_a_read_only_postgres(
    read_only_role: tuple[str, Callable[[bool], None]], tmp_path: Path
) -> None:
    url, read_only = read_only_role
    ride_out(url, tmp_path, lambda: read_only(True), lambda: read_only(False))


@pytest.mark.redis
def test_a_worker_tells_of_a_redis_outage_its_client_rides_out(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    # Redis stopped for less than its client's retry budget (about 20 s): no call gives up,
    # and the worker used to log nothing at all; the client's retries now tell it.
    url = f"redis://127.0.0.1:{redis_server.port}/0?prefix=stopped{uuid.uuid4().hex[:6]}"
    ride_out(url, tmp_path, redis_server.stop, redis_server.start)


@pytest.mark.redis
def test_a_dropped_idle_connection_is_no_outage_but_a_failed_reconnect_is(
    private_redis: tuple[str, Any], redis_server: RedisServer
) -> None:
    from faena.brokers.redis import RedisBroker

    url, admin = private_redis
    broker = RedisBroker.from_url(url)
    broker.setup()
    heard: list[BaseException] = []
    broker.add_retry_listener(heard.append)
    try:
        assert broker.claim("w", ["q"], 1, 30.0).jobs == []  # its connection is open
        admin.execute_command("CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes")
        assert broker.claim("w", ["q"], 1, 30.0).jobs == []  # reconnected at once
        assert heard == []
        redis_server.stop()
        threading.Timer(1.0, redis_server.start).start()
        assert broker.claim("w", ["q"], 1, 30.0).jobs == []  # rode it out, and told
        assert heard and all(isinstance(e, Exception) for e in heard)
    finally:
        broker.remove_retry_listener(heard.append)
        broker.close()
