"""What a worker's turns do in a drain: ``faena worker`` drains ``--n`` counted no-op jobs
(as bench/ab_drain.py runs it) with every broker call that reports and claims
(``finish_and_claim``) and every job's run recorded in the worker's process: which thread
called, how long it took, how many reports it carried, how many jobs it asked for and got;
and for each slot thread the time it sat without a job between two runs. Prints, for each
``--prefetch`` value given, the drain's rate and those distributions (the recording costs a
few µs a call, the same for every variant).

    .venv/bin/python bench/trace_turns.py --broker redis --prefetch auto --prefetch 8
"""

from __future__ import annotations

import argparse
import atexit
import collections
import itertools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

BROKERS = {
    "redis": ("faena.brokers.redis.broker", "RedisBroker"),
    "postgres": ("faena.brokers.postgres.broker", "PostgresBroker"),
    "sqlite": ("faena.brokers.sqlite.broker", "SqliteBroker"),
}


def traced_worker(out: str, kind: str) -> None:
    """The worker process: ``faena.cli.main`` with its broker calls and runs recorded."""
    import importlib

    import faena.worker.executors as executors
    import faena.worker.runtime as runtime

    module_name, cls_name = BROKERS[kind]
    cls = getattr(importlib.import_module(module_name), cls_name)
    calls: list[tuple[str, float, float, int, int, int]] = []
    runs: list[tuple[str, float, float]] = []
    original_call = cls.finish_and_claim
    original_run = executors.run_sync
    original_sleep = runtime.sleep_on
    sleeps: list[tuple[float, float, float, int, int]] = []

    def sleep_on(fds: Any, timeout: float, inbox: Any, flush: Any, slots_log: Any) -> Any:
        t0 = time.perf_counter()
        readable = original_sleep(fds, timeout, inbox, flush, slots_log)
        sleeps.append((t0, time.perf_counter(), timeout, len(readable), int(inbox.later())))
        return readable

    def finish_and_claim(
        self: Any, outcomes: Any, worker: Any, queues: Any, limit: int, lease: Any
    ) -> Any:
        t0 = time.perf_counter()
        accepted, claim = original_call(self, outcomes, worker, queues, limit, lease)
        t1 = time.perf_counter()
        name = threading.current_thread().name
        calls.append((name, t0, t1, len(outcomes), limit, len(claim.jobs)))
        return accepted, claim

    def run_sync(job: Any, task: Any, middleware: Any) -> Any:
        t0 = time.perf_counter()
        result = original_run(job, task, middleware)
        runs.append((threading.current_thread().name, t0, time.perf_counter()))
        return result

    cls.finish_and_claim = finish_and_claim
    executors.run_sync = run_sync
    runtime.sleep_on = sleep_on

    def save() -> None:
        with open(out, "w") as f:
            json.dump({"calls": calls, "runs": runs, "sleeps": sleeps}, f)

    atexit.register(save)
    from faena.cli.main import main as cli

    cli()


def dist(values: list[float]) -> str:
    if not values:
        return "none"
    q = statistics.quantiles(values, n=10) if len(values) > 1 else [values[0]] * 9
    return f"n {len(values)}, mean {statistics.fmean(values):.1f}, p50 {q[4]:.1f}, p90 {q[8]:.1f}"


def analyse(trace: dict[str, Any], t_first: float, t_last: float) -> dict[str, Any]:
    """The calls and runs between the first job's end and the last one's."""
    calls = [c for c in trace["calls"] if t_first <= c[1] <= t_last]
    runs = [r for r in trace["runs"] if t_first <= r[1] <= t_last]
    by_thread = collections.Counter("slot" if c[0].startswith("faena-job") else c[0] for c in calls)
    per_slot: dict[str, list[tuple[float, float]]] = collections.defaultdict(list)
    for name, a, b in runs:
        per_slot[name].append((a, b))
    gaps: list[float] = []
    for spans in per_slot.values():
        spans.sort()
        gaps += [(s[0] - p[1]) * 1e6 for p, s in itertools.pairwise(spans)]
    span = t_last - t_first
    sleeps = [x for x in trace["sleeps"] if t_first <= x[0] <= t_last]
    long_sleeps = [x for x in sleeps if x[1] - x[0] > 0.001]
    busy_calls = sum(c[2] - c[1] for c in calls)
    return {
        "calls": len(calls),
        "calls_by_thread": dict(by_thread),
        "jobs_per_call": dist([float(c[5]) for c in calls]),
        "asked_per_call": dist([float(c[4]) for c in calls]),
        "reports_per_call": dist([float(c[3]) for c in calls]),
        "empty_claims": sum(1 for c in calls if c[4] == 0),
        "call_us": dist([(c[2] - c[1]) * 1e6 for c in calls]),
        "call_share_of_time": round(busy_calls / span, 2) if span else None,
        "run_us": dist([(b - a) * 1e6 for _, a, b in runs]),
        "slot_gap_us": dist(gaps),
        "slot_gaps_over_1ms": sum(1 for g in gaps if g > 1000),
        "slot_gaps_ms_by_size": dict(
            sorted(collections.Counter(round(g / 1000) for g in gaps if g > 1000).items())
        ),
        "main_sleeps": len(sleeps),
        "main_sleep_longest_ms": round(max((x[1] - x[0] for x in sleeps), default=0) * 1e3, 1),
        "slot_gap_longest_ms": round(max(gaps, default=0) / 1e3, 1),
        "main_sleeps_over_1ms": len(long_sleeps),
        "main_sleep_over_1ms_total_s": round(sum(x[1] - x[0] for x in long_sleeps), 3),
        "main_sleeps_over_1ms_timed_out_with_later": sum(
            1 for x in long_sleeps if x[3] == 0 and x[4]
        ),
        "main_sleep_timeouts": dict(collections.Counter(round(x[2], 3) for x in long_sleeps)),
        "slot_idle_share": round(sum(gaps) / 1e6 / (span * len(per_slot)), 2) if span else None,
    }


def one(args: argparse.Namespace, prefetch: str) -> dict[str, Any]:
    import bench_faena as bf

    tmp = Path(tempfile.mkdtemp())
    trace_file = tmp / "trace.json"
    url = bf.url_for(args.broker, tmp, "trace")
    app = bf.fresh_app(url)
    counter_url, finished = bf.counted_backlog(app, args.n)
    env = bf.worker_env(url, counter_url)
    argv = [sys.executable, __file__, "--traced-worker", str(trace_file), "--broker", args.broker]
    argv += ["worker", "bench.benchapp:app", "--queues", "bench", "--log-format", "json"]
    argv += ["--concurrency", str(args.concurrency), "--prefetch", prefetch]
    with open(os.devnull, "w") as sink:
        proc = subprocess.Popen(argv, env=env, stdout=sink, stderr=subprocess.STDOUT, cwd=ROOT)
    try:
        t0, t1, cpu0, cpu1 = bf.timed_drain(proc, finished, args.n)
    finally:
        proc.terminate()
        proc.wait(30)
        bf.cleanup(app)
    trace = json.loads(trace_file.read_text())
    done = args.n - 1
    cpu = cpu1.user + cpu1.system - cpu0.user - cpu0.system
    out: dict[str, Any] = {
        "prefetch": prefetch,
        "jobs_per_s": round(done / (t1 - t0), 1),
        "worker_cpu_us_per_job": round(cpu / done * 1e6, 1),
        "load_avg_1m": round(os.getloadavg()[0], 2),
    }
    # perf_counter is system-wide (CLOCK_MONOTONIC) on Linux: the worker's times compare
    out.update(analyse(trace, t0, t1))
    return out


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "--traced-worker":
        out, kind = sys.argv[2], sys.argv[4]
        sys.argv = [sys.argv[0], *sys.argv[5:]]
        traced_worker(out, kind)
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--broker", choices=sorted(BROKERS), required=True)
    parser.add_argument("--n", type=int, default=10_000, help="jobs per drain")
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--prefetch", action="append", help="auto or N (several: variants)")
    parser.add_argument("--pairs", type=int, default=1, help="rounds of the variants")
    args = parser.parse_args()
    for r in range(1, args.pairs + 1):
        for p in args.prefetch or ["auto"]:
            result = one(args, p)
            result["round"] = r
            print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
