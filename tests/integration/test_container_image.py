"""deploy/docker/Dockerfile built and run for real with podman: a server container and a
worker container on PostgreSQL (a schema of its own), a job enqueued through the API runs to
success, SIGTERM with a long job running gives a graceful exit (0, inside the grace, no
SIGKILL) and the job released; `faena up` on SQLite in /data; the Celery
exporter role against Redis; the HEALTHCHECK of each listener; a non-root user under tini.
Image size and cold start are printed (docs/deploy.md cites them)."""

from __future__ import annotations

import importlib.util
import json
import os
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import PG_URL, REDIS_URL, need, port_open
from tests.integration.container_support import (
    build_image,
    need_podman,
    podman,
    remove,
    run_detached,
    wait_for,
)
from tests.integration.test_metrics_support import free_port

pytestmark = [
    pytest.mark.slow,
    pytest.mark.postgres,
    pytest.mark.redis,
    pytest.mark.xdist_group("podman"),  # one image build at a time (test_compose.py too)
]
TOKEN = "image-test-admin-token"
GRACE = 2.0
APP = """
import time

import faena

app = faena.App(pools={"etl_pool": 4}, parallelism=8)


@app.task(name="img.double", queue="etl", pool="etl_pool", retries=0)
def double(n):
    return n * 2


@app.task(name="img.long", queue="etl", pool="etl_pool", retries=0)
def long(seconds):
    time.sleep(seconds)
    return "done"
"""


@pytest.fixture(scope="module")
def image() -> str:
    need_podman()
    tag, seconds = build_image()
    size = int(podman("image", "inspect", "--format", "{{.Size}}", tag).stdout.strip())
    print(f"\nimage {tag}: built in {seconds:.1f}s, {size / 1e6:.0f} MB")
    return tag


@pytest.fixture
def pg_schema() -> Iterator[str]:
    need(importlib.util.find_spec("psycopg") is not None, "psycopg is not installed")
    need(port_open("127.0.0.1", 5432), "PostgreSQL is not running on 127.0.0.1:5432")
    import psycopg

    schema = f"t_img_{uuid.uuid4().hex[:10]}"
    yield schema
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def call(
    method: str, url: str, body: dict[str, Any] | None = None, token: str = TOKEN
) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method)
    req.add_header("Authorization", f"Bearer {token}")
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            raw = resp.read()
            return resp.status, json.loads(raw) if raw.startswith((b"{", b"[")) else raw.decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
    except OSError:
        return 0, None


def answers(url: str) -> bool:
    return call("GET", url)[0] == 200


def state_of(base: str, job_id: str) -> dict[str, Any]:
    status, body = call("GET", f"{base}/api/v1/jobs/{job_id}")
    assert status == 200, body
    assert isinstance(body, dict)
    return body


def test_server_and_worker_containers_run_a_job_and_sigterm_releases(
    image: str, pg_schema: str, tmp_path: Path
) -> None:
    app_dir = tmp_path / "app"
    app_dir.mkdir()
    app_dir.chmod(0o755)
    (app_dir / "imgapp.py").write_text(APP)
    (app_dir / "imgapp.py").chmod(0o644)
    broker = f"{PG_URL}?schema={pg_schema}"
    mount = (f"{app_dir}:/app:ro",)
    run = uuid.uuid4().hex[:8]
    server, worker = f"faena-test-server-{run}", f"faena-test-worker-{run}"
    port, metrics = free_port(), free_port()
    base = f"http://127.0.0.1:{port}"
    try:
        # the schema first, as an init container / a release step would
        podman("run", "--rm", "--network", "host", "--ulimit", "nofile=1024:1024",
               "--ulimit", "nproc=1024:1024", image, "migrate", "--broker", broker)  # fmt: skip

        started = time.monotonic()
        run_detached(
            server, image, "server", "imgapp:app", "--broker", broker,
            env={"FAENA_PORT": str(port), "FAENA_ADMIN_TOKEN": TOKEN}, volumes=mount,
        )  # fmt: skip
        wait_for(lambda: answers(f"{base}/readyz"), 60, "the server's /readyz", server)
        print(f"\nserver cold start (podman run to /readyz 200): {time.monotonic() - started:.2f}s")

        started = time.monotonic()
        run_detached(
            worker, image, "worker", "imgapp:app", "--broker", broker, "--concurrency", "2",
            "--grace", str(GRACE),
            env={"FAENA_METRICS_PORT": str(metrics), "FAENA_METRICS_ADDR": "0.0.0.0"},
            volumes=mount,
        )  # fmt: skip
        wait_for(lambda: answers(f"http://127.0.0.1:{metrics}/readyz"), 60, "worker", worker)
        print(f"worker cold start (podman run to /readyz 200): {time.monotonic() - started:.2f}s")

        # both containers' HEALTHCHECK passes, chosen from the role's environment
        for name in (server, worker):
            assert podman("healthcheck", "run", name, check=False).returncode == 0, name
        # PID 1 is tini; faena runs as the image's non-root user
        top = podman("top", worker, "user", "comm").stdout
        assert "tini" in top and "root" not in top, top

        status, job = call("POST", f"{base}/api/v1/jobs", {"task": "img.double", "args": [21]})
        assert status == 201, job
        wait_for(lambda: state_of(base, job["id"])["state"] == "succeeded", 30, "the job", worker)
        assert state_of(base, job["id"])["result"] == 42

        status, long_job = call("POST", f"{base}/api/v1/jobs", {"task": "img.long", "args": [300]})
        assert status == 201, long_job
        wait_for(lambda: state_of(base, long_job["id"])["state"] == "running", 30, "running")

        # SIGTERM (podman stop) with the job running: drain, release, exit 0 inside the
        # grace; a worker still running after --time would be SIGKILLed (exit 137)
        stopped = time.monotonic()
        podman("stop", "--time", "30", worker)
        took = time.monotonic() - stopped
        code = podman("inspect", "--format", "{{.State.ExitCode}}", worker).stdout.strip()
        print(f"worker stop with a running job: {took:.2f}s (grace {GRACE}s)")
        logs = podman("logs", worker).stdout.splitlines()
        assert code == "0", "\n".join(logs[-20:])
        released = [json.loads(line) for line in logs if '"job.released"' in line]
        assert [e["job_id"] for e in released] == [long_job["id"]], "\n".join(logs[-20:])
        after = state_of(base, long_job["id"])
        assert after["state"] == "queued", after
        assert after["worker"] is None and after["tries"] == 0, after
        assert all(json.loads(line) for line in logs if line.strip())  # JSON lines only
    finally:
        remove(worker, server)


def test_the_image_starts_without_compiling_a_module(image: str) -> None:
    """Every module a role imports has its .pyc in the image: the runtime's root is read-only
    and PYTHONDONTWRITEBYTECODE is set, so a missing one is compiled again at every start."""
    code = (
        "import sys, importlib.util, faena.cli.worker, faena.cli.server, faena.web.app,"
        " faena.brokers.postgres.broker, faena.brokers.redis.broker, faena.zeebe.serving\n"
        "import os\n"
        "missing = sorted(n for n, m in list(sys.modules.items())"
        " if getattr(m, '__file__', None) and m.__file__.endswith('.py')"
        " and m.__file__.startswith('/opt/faena')"
        " and not os.path.exists(importlib.util.cache_from_source(m.__file__)))\n"
        "print(len(sys.modules), missing)\n"
    )
    done = podman(
        "run", "--rm", "--network", "host", "--ulimit", "nofile=1024:1024",
        "--ulimit", "nproc=1024:1024", "--entrypoint", "python3", image, "-c", code,
    )  # fmt: skip
    count, _, missing = done.stdout.strip().partition(" ")
    assert int(count) > 300 and missing == "[]", done.stdout


def test_the_celery_exporter_role_reads_redis(image: str) -> None:
    need(importlib.util.find_spec("redis") is not None, "redis-py is not installed")
    need(port_open("127.0.0.1", 6379), "Redis is not running on 127.0.0.1:6379")
    import redis

    queue = f"t_img_{uuid.uuid4().hex[:10]}"
    client = redis.Redis.from_url(REDIS_URL)
    name, port = f"faena-test-exporter-{queue}", free_port()
    try:
        client.rpush(queue, "a", "b", "c")  # three messages, as kombu keeps a queue
        run_detached(
            name, image, "exporter", "celery", "--queues", queue,
            env={"FAENA_CELERY_BROKER_URL": REDIS_URL, "FAENA_EXPORTER_PORT": str(port),
                 "FAENA_HEALTHCHECK_URL": f"http://127.0.0.1:{port}/metrics"},
        )  # fmt: skip
        url = f"http://127.0.0.1:{port}/metrics"
        wait_for(lambda: answers(url), 30, "the exporter's /metrics", name)
        text = call("GET", url)[1]
        assert f'celery_queue_length{{queue="{queue}"}} 3.0' in text, text
        assert podman("healthcheck", "run", name, check=False).returncode == 0
        podman("stop", "--time", "10", name)
        assert podman("inspect", "--format", "{{.State.ExitCode}}", name).stdout.strip() == "0"
    finally:
        remove(name)
        client.delete(queue)
        client.close()


def test_the_up_role_runs_server_and_workers_on_sqlite_in_data(image: str, tmp_path: Path) -> None:
    """`faena up` in one container on SQLite in /data (a volume the non-root user writes):
    the server and its supervised workers; SIGTERM stops both."""
    app_dir, data = tmp_path / "app", tmp_path / "data"
    app_dir.mkdir()
    data.mkdir()
    app_dir.chmod(0o755)
    (app_dir / "imgapp.py").write_text(APP)
    (app_dir / "imgapp.py").chmod(0o644)
    os.chown(data, 10001, 10001)  # the image's user
    name, port = f"faena-test-up-{uuid.uuid4().hex[:8]}", free_port()
    base = f"http://127.0.0.1:{port}"
    try:
        run_detached(
            name, image, "up", "imgapp:app", "--token", TOKEN,
            # not --port: the HEALTHCHECK reads FAENA_PORT
            env={"FAENA_PORT": str(port), "FAENA_BROKER_URL": "sqlite:////data/faena.db"},
            volumes=(f"{app_dir}:/app:ro", f"{data}:/data"),
        )  # fmt: skip
        wait_for(lambda: answers(f"{base}/readyz"), 60, "faena up's /readyz", name)
        assert podman("healthcheck", "run", name, check=False).returncode == 0
        status, job = call("POST", f"{base}/api/v1/jobs", {"task": "img.double", "args": [4]})
        assert status == 201, job
        wait_for(lambda: state_of(base, job["id"])["state"] == "succeeded", 60, "the job", name)
        assert (data / "faena.db").exists()
        podman("stop", "--time", "40", name)
        code = podman("inspect", "--format", "{{.State.ExitCode}}", name).stdout.strip()
        assert code == "0", podman("logs", name).stderr[-3000:]
    finally:
        remove(name)
