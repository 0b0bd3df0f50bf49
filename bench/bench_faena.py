"""faena on each broker: enqueue (one by one and bulk), drain with one worker process of
concurrency 2, enqueue-to-start latency, idle CPU and worker memory. Prints one JSON line per
figure (the same format as bench/peers).

    .venv/bin/python bench/bench_faena.py --broker sqlite --broker postgres --broker redis
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
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


PG = os.environ.get("FAENA_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/test")
REDIS = os.environ.get("FAENA_BENCH_REDIS", "redis://127.0.0.1:6379/13")
REDIS_BASE = REDIS.rsplit("/", 1)[0]
# the drain's completion counter (the peers use database 15); BENCH_COUNTER_DB gives a
# database of its own to a drain run while another session drains on the same Redis
COUNTER_DB = int(os.environ.get("BENCH_COUNTER_DB", "12"))
# the counter's key, this run's own (its workers inherit it through the environment): two
# drains on one Redis at once never reset or count each other's jobs
COUNTER_KEY = os.environ.setdefault("BENCH_COUNTER_KEY", f"bench:done:{uuid.uuid4().hex[:12]}")


def url_for(kind: str, tmp: Path, name: str, variant: str = "") -> str:
    if kind == "sqlite":
        return f"sqlite:///{tmp / (name + '.db')}" + (f"?sync={variant}" if variant else "")
    tag = f"b{uuid.uuid4().hex[:8]}"
    if kind == "postgres":
        return f"{PG}?schema=bench_{tag}"
    return f"{REDIS}?prefix={tag}"


def counted_backlog(app, n: int):  # type: ignore[no-untyped-def]
    """Reset the completion counter, enqueue ``n`` ``counted`` jobs on queue ``bench``; the
    counter's URL and a function that reads how many have run."""
    import redis

    counter_url = f"{REDIS_BASE}/{COUNTER_DB}"
    counter = redis.Redis.from_url(counter_url)
    counter.delete(COUNTER_KEY)
    for _ in range(n // 1000):
        app.enqueue_many("counted", [((), {})] * 1000, queue="bench")

    def finished() -> int:
        return int(counter.get(COUNTER_KEY) or 0)

    return counter_url, finished


def worker_env(url: str, counter_url: str) -> dict[str, str]:
    """The environment of a ``faena worker bench.benchapp:app`` on ``url``."""
    path = os.pathsep.join(p for p in (os.environ.get("PYTHONPATH"), str(ROOT)) if p)
    return dict(os.environ, BENCH_BROKER=url, BENCH_COUNTER=counter_url, PYTHONPATH=path)


def timed_drain(proc: subprocess.Popen[bytes], finished, n: int):  # type: ignore[no-untyped-def]
    """Wait for a drain's first job (the worker started), then for its ``n``-th: the
    ``perf_counter`` and the worker's ``cpu_times`` at both ends."""
    worker = psutil.Process(proc.pid)
    while finished() < 1:
        if proc.poll() is not None:
            raise RuntimeError(f"the worker exited with {proc.returncode} before a job ran")
        time.sleep(0.0005)
    t0, cpu0 = time.perf_counter(), worker.cpu_times()
    while finished() < n:
        time.sleep(0.002)
    return t0, time.perf_counter(), cpu0, worker.cpu_times()


def cleanup(app) -> None:  # type: ignore[no-untyped-def]
    destroy = getattr(app.broker, "destroy", None)
    if callable(destroy):
        destroy()
    app.close()


def bench_enqueue(kind: str, tmp: Path, variant: str, n_one: int, n_bulk: int) -> None:
    system = f"faena-{kind}" + (f"(sync={variant})" if variant else "")
    app = fresh_app(url_for(kind, tmp, f"enq-{variant}", variant))
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
    cleanup(app)  # drop the run's schema / keys (SQLite's file goes with the temp dir)


def start_worker(
    url: str,
    env_extra: dict[str, str],
    processes: int = 1,
    log_level: str = "INFO",
    prefetch: int | None = None,
) -> tuple[subprocess.Popen[bytes], float]:
    """Launch ``faena worker`` on the bench app; its output goes to a file, as the peers'
    workers' output does (``bench/peers/common.py``): ``$BENCH_LOG_DIR/faena-worker.log``.
    At INFO, returns once the worker's ``worker.started`` line is written."""
    env = dict(os.environ, BENCH_BROKER=url, PYTHONPATH=str(ROOT), **env_extra)
    log_path = Path(os.environ.get("BENCH_LOG_DIR") or tempfile.gettempdir()) / "faena-worker.log"
    argv = [sys.executable, "-m", "faena.cli.main", "worker", "bench.benchapp:app"]
    argv += ["--queues", "bench", "--concurrency", "2", "--log-format", "json"]
    argv += ["--log-level", log_level, *(["--processes", str(processes)] if processes > 1 else [])]
    argv += ["--prefetch", str(prefetch)] if prefetch is not None else []  # None: the default
    with open(log_path, "ab") as out:
        offset = out.tell()
        proc = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)
    if log_level != "INFO":  # no worker.started line to wait for: the drain clock runs anyway
        return proc, time.perf_counter()
    deadline = time.monotonic() + 60
    with open(log_path, "rb") as log:
        log.seek(offset)
        seen = b""
        while time.monotonic() < deadline and proc.poll() is None:
            seen += log.read()
            if b'"worker.started"' in seen:
                return proc, time.perf_counter()
            time.sleep(0.001)
    raise RuntimeError(f"the worker did not start; its output is in {log_path}")


def bench_drain(
    kind: str,
    tmp: Path,
    n: int,
    counted: bool,
    processes: int = 1,
    log_level: str = "INFO",
    prefetch: int | None = None,
) -> None:
    """``counted``: each job INCRs a Redis counter that is polled every 2 ms, exactly as the
    peers' harness does (bench/peers/common.py), so the figures compare. Otherwise the jobs
    are no-ops and the broker's own counts are polled every 200 ms (faena alone)."""
    import redis

    url = url_for(kind, tmp, "drain" if counted else "drain-noop")
    app = fresh_app(url)
    counter_url = f"{REDIS_BASE}/{COUNTER_DB}"
    counter = redis.Redis.from_url(counter_url)
    counter.delete(COUNTER_KEY)
    task = "counted" if counted else "noop"
    for _ in range(n // 1000):
        app.enqueue_many(task, [((), {})] * 1000, queue="bench")

    def finished() -> int:
        if counted:
            return int(counter.get(COUNTER_KEY) or 0)
        counts = app.broker.count_by_state().items()
        return sum(c for (_q, s), c in counts if s.value == "succeeded")

    t0 = time.perf_counter()  # like the peers' harness: worker start-up counts
    proc, _ = start_worker(url, {"BENCH_COUNTER": counter_url}, processes, log_level, prefetch)
    try:
        while finished() < n:
            time.sleep(0.002 if counted else 0.2)
        elapsed = time.perf_counter() - t0
        top = psutil.Process(proc.pid)
        rss = sum(p.memory_info().rss for p in [top, *top.children()]) / 2**20
    finally:
        proc.terminate()
        proc.wait(30)
        cleanup(app)
    system = f"faena-{kind}" + (f"-p{processes}" if processes > 1 else "")
    system += f"-prefetch{prefetch}" if prefetch is not None else ""
    if log_level != "INFO":
        system += f"-{log_level.lower()}"
    settings = "1 worker process, --concurrency 2, thread executor, "
    if processes > 1:
        settings = (
            f"--processes {processes} --concurrency 2: {processes} worker processes under one "
            f"supervisor (as Celery prefork -c 2), thread executor, "
        )
    if prefetch is not None:
        settings += f"--prefetch {prefetch} (jobs claimed ahead; 0: off); "
    else:
        settings += "default --prefetch auto; "
    if log_level == "INFO":
        settings += "a JSON log line per job; "
    else:
        settings += f"--log-level {log_level} (no line per job, as the peers are run); "
    if counted:
        settings += "each job INCRs a Redis counter polled every 2 ms (as the peers' harness); "
    else:
        settings += "no-op jobs, the broker's counts polled every 200 ms; "
    settings += "clock from worker launch"
    emit(
        system, "drain" if counted else "drain_noop", n / elapsed, "jobs/s", n=n, settings=settings
    )
    if counted:
        emit(system, "worker_rss_after_drain", rss, "MiB", settings="thread mode")


def bench_latency(kind: str, tmp: Path, n: int, prefetch: int | None = None) -> None:
    url = url_for(kind, tmp, "lat")
    record = tmp / f"lat-{kind}-{prefetch}.txt"
    app = fresh_app(url)
    proc, _ = start_worker(url, {"BENCH_RECORD": str(record)}, prefetch=prefetch)
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
        cleanup(app)
    lat.sort()
    system = f"faena-{kind}" + (f"-prefetch{prefetch}" if prefetch is not None else "")
    for p in (50, 95, 99):
        emit(system, f"latency_p{p}", lat[min(len(lat) - 1, int(len(lat) * p / 100))], "ms", n=n)
    emit(system, "idle_worker_cpu", idle_cpu, "% of a core", settings="5 s idle")
    emit(system, "worker_rss_idle", rss, "MiB", settings="thread mode")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--drain", type=int, default=20_000)
    parser.add_argument("--latency", type=int, default=300)
    parser.add_argument("--enqueue", type=int, default=5_000)
    parser.add_argument("--bulk", type=int, default=50_000)
    parser.add_argument("--broker", action="append", choices=["sqlite", "postgres", "redis"])
    parser.add_argument(
        "--only",
        action="append",
        choices=["enqueue", "drain", "latency"],
        help="run only these parts (repeatable; default: all)",
    )
    parser.add_argument(
        "--processes",
        type=int,
        action="append",
        help="drain also with faena worker --processes N (repeatable; 1 is always run)",
    )
    parser.add_argument(
        "--prefetch",
        type=int,
        action="append",
        help="drain and latency also with faena worker --prefetch N, one process (repeatable)",
    )
    parser.add_argument(
        "--quiet-too",
        action="store_true",
        help="drain also at --log-level WARNING, the peers' setting (no log line per job)",
    )
    parser.add_argument(
        "--counted-only",
        action="store_true",
        help="drain: only the counted drain that compares with the peers (no no-op drain)",
    )
    args = parser.parse_args()
    parts = set(args.only or ["enqueue", "drain", "latency"])
    with tempfile.TemporaryDirectory(prefix="faena-bench-") as d:
        tmp = Path(d)
        for kind in args.broker or ["sqlite"]:
            if "enqueue" in parts:
                for variant in ("enqueue", "normal") if kind == "sqlite" else ("",):
                    bench_enqueue(kind, tmp, variant, args.enqueue, args.bulk)
            if "drain" in parts:
                bench_drain(kind, tmp, args.drain, counted=True)
                for procs in args.processes or []:
                    if procs > 1:
                        bench_drain(kind, tmp, args.drain, True, processes=procs)
                        if args.quiet_too:
                            bench_drain(kind, tmp, args.drain, True, procs, "WARNING")
                for pf in args.prefetch or []:
                    bench_drain(kind, tmp, args.drain, True, prefetch=pf)
                if args.quiet_too:
                    bench_drain(kind, tmp, args.drain, True, log_level="WARNING")
                if not args.counted_only:
                    bench_drain(kind, tmp, args.drain, counted=False)
            if "latency" in parts:
                bench_latency(kind, tmp, args.latency)
                for pf in args.prefetch or []:
                    bench_latency(kind, tmp, args.latency, prefetch=pf)


if __name__ == "__main__":
    main()
