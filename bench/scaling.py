"""The drain of 1, 2 and 4 worker processes on one broker, and what each job costs the
worker and the broker in CPU time (issue 23: scaling with processes, cost per job).

    .venv/bin/python bench/scaling.py --broker redis --broker postgres --broker sqlite \\
        --processes 1 --processes 2 --processes 4 --rounds 3 \\
        --out bench/results/scaling-$(date -u +%Y%m%dT%H%M%SZ).jsonl

Each drain: ``--n`` counted no-op jobs (bench/benchapp.py ``counted``: one ``INCR`` of a
completion counter on the shared Redis, as in the peers' harness) enqueued first, then P
``faena worker`` processes with default settings (``--concurrency 2``), timed from the first
job's end to the last's. Rounds alternate the process counts so the machine's drift hits
every count alike.

CPU per job is read with psutil from the processes that do the work, never from the whole
machine (other sessions share it):

* worker: the user + system time of the P worker processes;
* Redis: a ``redis-server`` of the run's own on a free port (AOF off, as the tests' server),
  so the counter's ``INCR`` on the shared server is not counted;
* PostgreSQL: the server backends of the workers' own connections (pg_stat_activity's
  ``client_port`` matched to the workers' sockets), so other sessions' backends are not;
* SQLite: the broker is the worker processes themselves (no server).

Prints one JSON line per drain, then the medians.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

import bench_faena as bf  # noqa: E402
import psutil  # noqa: E402
import redis  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def own_redis() -> Iterator[tuple[str, psutil.Process]]:
    """A redis-server of this run's own: its URL and process."""
    exe = shutil.which("redis-server")
    if exe is None:
        raise SystemExit("redis-server is not on PATH (Debian: apt-get install redis-server)")
    port, tmp = free_port(), tempfile.mkdtemp(prefix="faena-scaling-redis-")
    proc = subprocess.Popen(
        [exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", tmp],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    client = redis.Redis(port=port)
    deadline = time.monotonic() + 10
    while True:
        try:
            client.ping()
            break
        except redis.ConnectionError:
            if time.monotonic() > deadline:
                raise SystemExit(f"redis-server on port {port} did not answer") from None
            time.sleep(0.05)
    try:
        yield f"redis://127.0.0.1:{port}/0", psutil.Process(proc.pid)
    finally:
        proc.terminate()
        proc.wait(10)
        shutil.rmtree(tmp, ignore_errors=True)


def cpu_seconds(procs: list[psutil.Process]) -> float:
    total = 0.0
    for p in procs:
        try:
            t = p.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += t.user + t.system
    return total


def pg_backends(workers: list[psutil.Process]) -> list[psutil.Process]:
    """The PostgreSQL backends serving the workers' connections (their client ports)."""
    import psycopg

    ports: set[int] = set()
    for w in workers:
        for c in w.net_connections(kind="tcp"):
            if c.raddr and c.raddr.port == 5432:
                ports.add(c.laddr.port)
    with psycopg.connect(bf.PG, autocommit=True) as conn:
        rows = conn.execute("SELECT pid, client_port FROM pg_stat_activity").fetchall()
    return [psutil.Process(pid) for pid, port in rows if port in ports]


def one_drain(kind: str, n: int, processes: int, own: tuple[str, psutil.Process]) -> dict[str, Any]:
    """One drain; ``own``: this run's redis-server (URL, process), the Redis broker."""
    redis_url, redis_proc = own
    tmp = Path(tempfile.mkdtemp(prefix="faena-scaling-"))
    if kind == "redis":
        url = f"{redis_url}?prefix=s{os.urandom(4).hex()}"
    else:
        url = bf.url_for(kind, tmp, "scaling")
    app = bf.fresh_app(url)
    counter_url, finished = bf.counted_backlog(app, n)
    env = bf.worker_env(url, counter_url)
    argv = [sys.executable, "-m", "faena.cli.main", "worker", "bench.benchapp:app"]
    argv += ["--queues", "bench", "--concurrency", "2", "--log-format", "json"]
    popens = [
        subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(processes)
    ]
    try:
        workers = [psutil.Process(p.pid) for p in popens]
        while finished() < 1:
            for p in popens:
                if p.poll() is not None:
                    raise RuntimeError(f"a worker exited with {p.returncode} before a job ran")
            time.sleep(0.0005)
        broker: list[psutil.Process] = []
        if kind == "postgres":
            broker = pg_backends(workers)
        elif kind == "redis":
            broker = [redis_proc]
        t0, w0, b0 = time.perf_counter(), cpu_seconds(workers), cpu_seconds(broker)
        while finished() < n:
            time.sleep(0.002)
        elapsed = time.perf_counter() - t0
        w1, b1 = cpu_seconds(workers), cpu_seconds(broker)
    finally:
        for p in popens:
            p.terminate()
        for p in popens:
            p.wait(30)
        bf.cleanup(app)
        shutil.rmtree(tmp, ignore_errors=True)
    done = n - 1
    return {
        "broker": kind,
        "processes": processes,
        "n": n,
        "jobs_per_s": round(done / elapsed, 1),
        "worker_cpu_us_per_job": round((w1 - w0) / done * 1e6, 1),
        "broker_cpu_us_per_job": round((b1 - b0) / done * 1e6, 1) if broker else None,
        "broker_processes": len(broker),
        "worker_cores": round((w1 - w0) / elapsed, 2),
        "broker_cores": round((b1 - b0) / elapsed, 2) if broker else None,
        "load_avg_1m": round(os.getloadavg()[0], 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--broker", action="append", choices=["postgres", "redis", "sqlite"])
    parser.add_argument("--processes", type=int, action="append", help="default: 1, 2 and 4")
    parser.add_argument("--n", type=int, default=20_000, help="jobs per drain")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, help="also append the JSON lines to this file")
    args = parser.parse_args()
    brokers = args.broker or ["redis", "postgres", "sqlite"]
    counts = args.processes or [1, 2, 4]
    if any(p < 1 for p in counts):
        parser.error(f"--processes must be >= 1, got {counts}")
    rates: dict[tuple[str, int], list[dict[str, Any]]] = {}
    out = args.out.open("a") if args.out else None
    with own_redis() as own:
        for r in range(1, args.rounds + 1):
            for kind in brokers:
                for p in counts if r % 2 else list(reversed(counts)):
                    result = one_drain(kind, args.n, p, own)
                    result["round"] = r
                    line = json.dumps(result)
                    print(line, flush=True)
                    if out:
                        out.write(line + "\n")
                        out.flush()
                    rates.setdefault((kind, p), []).append(result)
    for (kind, p), results in sorted(rates.items()):

        def med(key: str, results: list[dict[str, Any]] = results) -> float | None:
            values = [float(x[key]) for x in results if x[key] is not None]
            return statistics.median(values) if values else None

        print(
            f"{kind} x{p}: {med('jobs_per_s'):,.0f} jobs/s, worker {med('worker_cpu_us_per_job')}"
            f" us/job, broker {med('broker_cpu_us_per_job')} us/job",
            file=sys.stderr,
        )


if __name__ == "__main__":
    main()
