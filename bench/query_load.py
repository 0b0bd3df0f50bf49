"""Query load against a real ``faena server``: do heavy counts and listings starve health?

    python bench/query_load.py --broker sqlite
    python bench/query_load.py --broker postgres --jobs 50000 --clients 12
    python bench/query_load.py --broker redis

Fills a fresh store (SQLite file, PostgreSQL schema, Redis key prefix) with ``--jobs`` jobs
over three queues by bulk enqueue (a fifth of them claimed and finished: succeeded, some
dead), starts ``faena server`` on it, then ``--clients`` threads each send ``--rounds`` rounds
of the heavy requests (``/engine-rest/external-task/count`` by topic and of everything, a
Camunda listing by topic, ``/api/v1/jobs`` filtered and not) while a prober asks ``/readyz``
every 0.2 s. Prints one JSON object per endpoint (count, median and max ms) and one for
``/readyz`` (answers by status, max ms). The server runs the ``faena`` found on PYTHONPATH,
so the same script measures two checkouts (``PYTHONPATH=/path/to/src``).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any

PG_URL = os.environ.get("FAENA_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("FAENA_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
QUEUES = ("orders", "mail", "etl")

REQUESTS = {
    "camunda_count_topic": ("GET", "/engine-rest/external-task/count?topicName=orders", None),
    "camunda_count_all": ("POST", "/engine-rest/external-task/count", {}),
    "camunda_list_topic": (
        "GET",
        "/engine-rest/external-task?topicName=mail&maxResults=100",
        None,
    ),
    "jobs_queued_of_queue": ("GET", "/api/v1/jobs?state=queued&queue=etl&limit=100", None),
    "jobs_dead": ("GET", "/api/v1/jobs?state=dead&limit=100", None),
    "jobs_newest": ("GET", "/api/v1/jobs?limit=1000", None),
}


def store_url(kind: str, folder: Path) -> str:
    tag = uuid.uuid4().hex[:10]
    if kind == "sqlite":
        return f"sqlite:///{folder / 'bench.db'}"
    if kind == "postgres":
        return f"{PG_URL}{'&' if '?' in PG_URL else '?'}schema=bench_{tag}"
    if kind == "redis":
        return f"{REDIS_URL}{'&' if '?' in REDIS_URL else '?'}prefix=bench{tag}"
    raise SystemExit(f"--broker is sqlite, postgres or redis, not {kind!r}")


def fill(url: str, jobs: int) -> None:
    from faena.brokers.url import open_broker
    from faena.core.job import ErrorInfo, NewJob, Outcome
    from faena.core.states import JobState

    broker = open_broker(url)
    broker.setup()
    batch = 5000
    for lo in range(0, jobs, batch):
        broker.enqueue(
            [
                NewJob(task="bench.work", queue=QUEUES[i % 3], kwargs_json=f'{{"n": {i}}}')
                for i in range(lo, min(lo + batch, jobs))
            ]
        )
    done = 0
    while done < jobs // 5:
        got = broker.claim("bench-filler", list(QUEUES), 1000, 60.0).jobs
        if not got:
            break
        outcomes = [
            Outcome(j.id, j.attempt, JobState.SUCCEEDED, result_json="1")
            if n % 10
            else Outcome(j.id, j.attempt, JobState.DEAD, error=ErrorInfo("Boom", "bench"))
            for n, j in enumerate(got)
        ]
        broker.finish(outcomes)
        done += len(got)
    broker.close()


def drop(url: str) -> None:
    from faena.brokers.url import open_broker

    broker = open_broker(url)
    destroy = getattr(broker, "destroy", None)
    if destroy is not None:
        destroy()
    broker.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def call(method: str, url: str, body: Any) -> tuple[int, float]:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    started = time.perf_counter()
    try:
        with urllib.request.urlopen(req, timeout=120) as r:
            r.read()
            status = r.status
    except urllib.error.HTTPError as e:
        status = e.code
    except OSError:
        status = 0
    return status, (time.perf_counter() - started) * 1000


def run(args: argparse.Namespace) -> None:
    folder = Path(tempfile.mkdtemp(prefix="faena-query-load-"))
    url = store_url(args.broker, folder)
    t0 = time.perf_counter()
    fill(url, args.jobs)
    filled = time.perf_counter() - t0
    port = free_port()
    log = open(folder / "server.log", "wb")  # noqa: SIM115
    server = subprocess.Popen(
        [sys.executable, "-m", "faena.cli.main", "server", "--broker", url, "--port", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=folder,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while call("GET", base + "/healthz", None)[0] != 200:
            if time.monotonic() > deadline or server.poll() is not None:
                raise SystemExit(
                    f"faena server did not start: {(folder / 'server.log').read_text()}"
                )
            time.sleep(0.2)
        times: dict[str, list[float]] = {name: [] for name in REQUESTS}
        statuses: dict[str, dict[int, int]] = {name: {} for name in REQUESTS}
        ready: list[tuple[int, float]] = []
        stop = threading.Event()

        def client(n: int) -> None:
            names = list(REQUESTS)
            for r in range(args.rounds):
                for k in range(len(names)):
                    name = names[(n + r + k) % len(names)]
                    method, path, body = REQUESTS[name]
                    status, ms = call(method, base + path, body)
                    times[name].append(ms)
                    statuses[name][status] = statuses[name].get(status, 0) + 1

        def prober() -> None:
            while not stop.is_set():
                ready.append(call("GET", base + "/readyz", None))
                stop.wait(0.2)

        probe = threading.Thread(target=prober)
        probe.start()
        clients = [threading.Thread(target=client, args=(n,)) for n in range(args.clients)]
        t1 = time.perf_counter()
        for c in clients:
            c.start()
        for c in clients:
            c.join()
        wall = time.perf_counter() - t1
        stop.set()
        probe.join()
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(30)
        log.close()
        drop(url)
    meta = {"broker": args.broker, "jobs": args.jobs, "clients": args.clients}
    print(json.dumps({**meta, "fill_s": round(filled, 1), "load_wall_s": round(wall, 1)}))
    for name, values in times.items():
        print(
            json.dumps(
                {
                    **meta,
                    "request": name,
                    "n": len(values),
                    "status": statuses[name],
                    "median_ms": round(statistics.median(values), 1),
                    "max_ms": round(max(values), 1),
                }
            )
        )
    by_status: dict[int, int] = {}
    for status, _ in ready:
        by_status[status] = by_status.get(status, 0) + 1
    print(
        json.dumps(
            {
                **meta,
                "request": "readyz",
                "n": len(ready),
                "status": by_status,
                "median_ms": round(statistics.median(ms for _, ms in ready), 1),
                "max_ms": round(max(ms for _, ms in ready), 1),
            }
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--broker", default="sqlite", help="sqlite, postgres or redis")
    parser.add_argument("--jobs", type=int, default=50_000)
    parser.add_argument("--clients", type=int, default=12)
    parser.add_argument("--rounds", type=int, default=2)
    run(parser.parse_args())


if __name__ == "__main__":
    main()
