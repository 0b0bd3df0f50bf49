"""faena on SQLite: enqueue (one by one and bulk), drain, enqueue-to-start latency, idle CPU
and worker memory. Prints one JSON line per figure (the same format as bench/peers).

    .venv/bin/python bench/bench_sqlite.py [--drain 20000] [--latency 300]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def emit(system: str, metric: str, value: float, unit: str, **extra: object) -> None:
    line = {"system": system, "metric": metric, "value": round(value, 2), "unit": unit, **extra}
    print(json.dumps(line), flush=True)


def fresh_app(url: str):  # type: ignore[no-untyped-def]
    import faena

    app = faena.App(broker=url)
    app.broker  # noqa: B018 - create the schema
    return app


def bench_enqueue(tmp: Path, sync: str, n_one: int, n_bulk: int) -> None:
    system = f"faena-sqlite(sync={sync})"
    app = fresh_app(f"sqlite:///{tmp / f'enq-{sync}.db'}?sync={sync}")
    t0 = time.perf_counter()
    for _ in range(n_one):
        app.enqueue("noop", queue="bench")
    emit(system, "enqueue_one", n_one / (time.perf_counter() - t0), "jobs/s", n=n_one)
    calls = [((), {})] * 1000
    t0 = time.perf_counter()
    for _ in range(n_bulk // 1000):
        app.enqueue_many("noop", calls, queue="bench")
    emit(
        system,
        "enqueue_bulk",
        n_bulk / (time.perf_counter() - t0),
        "jobs/s",
        n=n_bulk,
        settings="batches of 1000",
    )
    app.close()


def start_worker(url: str, env_extra: dict[str, str]) -> tuple[subprocess.Popen[str], float]:
    env = dict(os.environ, BENCH_BROKER=url, PYTHONPATH=str(ROOT), **env_extra)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "faena.cli.main",
            "worker",
            "bench.benchapp:app",
            "--queues",
            "bench",
            "--concurrency",
            "2",
            "--log-format",
            "json",
            "--log-level",
            "INFO",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=ROOT,
    )
    assert proc.stdout is not None
    for line in proc.stdout:
        if '"worker.started"' in line:
            started = time.perf_counter()
            # keep reading, or the worker blocks on a full pipe
            threading.Thread(target=proc.stdout.read, daemon=True).start()
            return proc, started
    raise RuntimeError("worker did not start")


def bench_drain(tmp: Path, n: int) -> None:
    url = f"sqlite:///{tmp / 'drain.db'}"
    app = fresh_app(url)
    for _ in range(n // 1000):
        app.enqueue_many("noop", [((), {})] * 1000, queue="bench")
    proc, t0 = start_worker(url, {})
    try:
        while True:
            done = sum(
                c for (_q, s), c in app.broker.count_by_state().items() if s.value == "succeeded"
            )
            if done >= n:
                break
            time.sleep(0.02)
        elapsed = time.perf_counter() - t0
        rss = psutil.Process(proc.pid).memory_info().rss / 2**20
    finally:
        proc.terminate()
        proc.wait(30)
    emit(
        "faena-sqlite",
        "drain",
        n / elapsed,
        "jobs/s",
        n=n,
        settings="1 worker process, --concurrency 2, thread executor",
    )
    emit("faena-sqlite", "worker_rss_after_drain", rss, "MiB", settings="thread mode")


def bench_latency(tmp: Path, n: int) -> None:
    url = f"sqlite:///{tmp / 'lat.db'}"
    record = tmp / "lat.txt"
    app = fresh_app(url)
    proc, _ = start_worker(url, {"BENCH_RECORD": str(record)})
    try:
        time.sleep(1.0)
        ps = psutil.Process(proc.pid)
        cpu0 = sum(ps.cpu_times()[:2])
        time.sleep(5.0)
        idle_cpu = (sum(ps.cpu_times()[:2]) - cpu0) / 5.0 * 100
        lat = []
        for i in range(n):
            t0 = time.time()
            app.enqueue("stamp", [i], queue="bench")
            while True:
                text = record.read_text() if record.exists() else ""
                if text.count("\n") > i:
                    started = float(text.splitlines()[i].split()[1])
                    lat.append((started - t0) * 1000)
                    break
                time.sleep(0.0005)
            time.sleep(0.01)
        rss = ps.memory_info().rss / 2**20
    finally:
        proc.terminate()
        proc.wait(30)
    lat.sort()
    for p in (50, 95, 99):
        emit(
            "faena-sqlite",
            f"latency_p{p}",
            lat[min(len(lat) - 1, int(len(lat) * p / 100))],
            "ms",
            n=n,
        )
    emit("faena-sqlite", "idle_worker_cpu", idle_cpu, "% of a core", settings="5 s idle")
    emit("faena-sqlite", "worker_rss_idle", rss, "MiB", settings="thread mode")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--drain", type=int, default=20_000)
    parser.add_argument("--latency", type=int, default=300)
    parser.add_argument("--enqueue", type=int, default=5_000)
    parser.add_argument("--bulk", type=int, default=50_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="faena-bench-") as d:
        tmp = Path(d)
        for sync in ("enqueue", "normal"):
            bench_enqueue(tmp, sync, args.enqueue, args.bulk)
        bench_drain(tmp, args.drain)
        bench_latency(tmp, args.latency)


if __name__ == "__main__":
    main()
