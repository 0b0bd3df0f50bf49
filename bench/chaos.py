"""Chaos: real ``faena worker`` processes (thread, process and prefork modes, some
prefetching) under a steady load through a pool and a parallelism cap, while faults are
injected at random; then the invariants (bench/chaos_check.py) are checked.

    .venv/bin/python bench/chaos.py --backend sqlite --backend postgres --backend redis \\
        --minutes 5
    .venv/bin/python bench/chaos.py --backend redis --soak-minutes 10

Faults: SIGKILL of a worker process or of a whole process group, SIGTERM (grace 1 s),
SIGSTOP longer than the lease then SIGCONT, producer clock steps; per backend: Redis
restarts (its own server, AOF), PostgreSQL ``pg_terminate_backend`` of this run's
connections, drops, delays and half-open silences through a TCP proxy (both), a full disk
(SQLite on a tmpfs of its own). One JSON line per fault and a summary line go to
``bench/results/chaos-<backend>-<stamp>.jsonl`` (``soak-...`` for the soak).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "src")]

from bench.chaos_check import Fault, Findings, check, read_events, read_records, summary  # noqa: E402
from bench.chaos_rig import (  # noqa: E402
    BACKENDS,
    LEASE,
    PARALLELISM,
    POOL,
    WORKERS,
    Backend,
    Keeper,
    Producer,
    Worker,
    reader,
    worker_env,
)
from bench.chaos_sampler import Sampler  # noqa: E402

WORKER_FAULTS = ("kill", "killpg", "term", "stop", "clock")


def inject(kind: str, backend: Backend, workers: list[Worker], producer: Producer,
           rng: random.Random) -> Fault:  # fmt: skip
    """Inject one fault of ``kind`` and undo it; what it hit and when."""
    start = time.time()
    if kind in ("kill", "killpg", "term", "stop"):
        alive = [w for w in workers if w.alive() and w.pids()]
        if not alive:
            return Fault(kind, "none", start, start)
        w = rng.choice(alive)
        pids = tuple(w.pids())
        if kind == "kill":  # one process of its tree: a worker, a prefork child, a job's child
            victim = rng.choice(pids)
            with _gone():
                os.kill(victim, signal.SIGKILL)
            return Fault(kind, f"{w.name}:{victim}", start, time.time(), (victim,))
        if kind == "killpg":
            w.signal_group(signal.SIGKILL)
            return Fault(kind, w.name, start, time.time(), pids)
        if kind == "term":
            w.signal_group(signal.SIGTERM)
            return Fault(kind, w.name, start, time.time(), pids)
        w.paused = True  # stop: longer than the lease, so it loses its jobs
        w.signal_group(signal.SIGSTOP)
        time.sleep(LEASE + rng.uniform(1.0, 2.5))
        w.signal_group(signal.SIGCONT)
        w.paused = False
        return Fault(kind, w.name, start, time.time(), pids)
    if kind == "clock":
        producer.clock.offset = rng.choice([-60.0, -5.0, 5.0, 10.0])
        time.sleep(rng.uniform(1.0, 3.0))
        step = producer.clock.offset
        producer.clock.offset = 0.0
        return Fault(kind, f"producer {step:+.0f} s", start, time.time())
    if kind == "restart":
        backend.restart(rng.uniform(0.5, 2.0))  # type: ignore[attr-defined]
        return Fault(kind, "broker", start, time.time())
    if kind == "terminate":
        n = backend.terminate()  # type: ignore[attr-defined]
        return Fault(kind, f"{n} connections", start, time.time())
    if kind in ("drop", "delay", "halfopen"):
        assert backend.proxy is not None
        backend.proxy.set(kind, delay=rng.uniform(0.05, 0.5))
        time.sleep(rng.uniform(1.0, 4.0) if kind != "halfopen" else rng.uniform(1.0, 2 * LEASE))
        backend.proxy.heal()
        return Fault(kind, "proxy", start, time.time())
    if kind == "diskfull":
        filler = backend.fill()  # type: ignore[attr-defined]
        time.sleep(rng.uniform(1.0, 4.0))
        filler.unlink()
        return Fault(kind, "disk", start, time.time())
    raise ValueError(f"unknown fault {kind!r}; choose one of {WORKER_FAULTS + backend.faults}")


class _gone:
    """A process that is already gone is no error."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: object, *_rest: object) -> bool:
        return kind is ProcessLookupError


def wait_terminal(backend: Backend, ids: list[str], timeout: float) -> float:
    from bench.chaos_check import TERMINAL

    app = reader(backend.url)
    pending = set(ids)
    start = time.monotonic()
    try:
        while pending and time.monotonic() - start < timeout:
            for job_id in list(pending):
                try:
                    job = app.broker.get(job_id)
                except Exception:
                    break
                if job is not None and job.state in TERMINAL:
                    pending.discard(job_id)
            if pending:
                time.sleep(0.5)
    finally:
        app.close()
    return time.monotonic() - start


def run_chaos(name: str, seconds: float, rate: float, seed: int, out: Path) -> Findings:
    rng = random.Random(seed)
    tmp = Path(tempfile.mkdtemp(prefix=f"chaos-{name}-"))
    backend: Backend = BACKENDS[name](tmp)
    log = tmp / "attempts.log"
    workers: list[Worker] = []
    faults: list[Fault] = []
    try:
        import faena

        setup = faena.App(broker=backend.url, pools={"limited": POOL}, parallelism=PARALLELISM)
        setup.broker.setup()
        setup.close()
        env = worker_env(log)
        workers = [Worker(n, args, backend.worker_url, tmp, env) for n, args in WORKERS.items()]
        for w in workers:
            w.start()
        keeper, producer, sampler = Keeper(workers), Producer(backend.url, rate, seed), None
        sampler = Sampler(backend.url, log, workers)
        for t in (keeper, producer, sampler):
            t.start()
        kinds = WORKER_FAULTS + backend.faults
        time.sleep(2.0)  # the workers up before the first fault
        deadline = time.time() + seconds
        with open(out, "w") as sink:
            order: list[str] = []
            while time.time() < deadline:
                if not order:  # every kind once in a random order, then again
                    order = rng.sample(kinds, len(kinds))
                fault = inject(order.pop(), backend, workers, producer, rng)
                faults.append(fault)
                sink.write(json.dumps({"fault": asdict(fault)}) + "\n")
                sink.flush()
                time.sleep(rng.uniform(0.5, 2.0))
            producer.done.set()
            producer.join()
            drain = wait_terminal(backend, producer.accepted, timeout=120 + 4 * LEASE)
            sampler.done.set()
            keeper.done.set()
            keeper.join()
            sampler.join()
            sampler.sample()  # the last lines and reports
            for w in workers:
                w.stop()
            producer.app.close()
            sampler.app.close()
            store = reader(backend.url)
            jobs = {i: store.broker.get(i) for i in producer.accepted}
            store.close()
            findings = check(
                producer.accepted,
                jobs,
                read_records(log),
                read_events(p for w in workers for p in w.logs),
                sampler.samples,
                faults,
                producer.due,
            )
            findings.samples = sampler.watch.samples
            findings.continuous = [str(v) for v in sampler.watch.violations]
            line = summary_line(name, seconds, rate, faults, findings, producer, drain)
            sink.write(json.dumps(line) + "\n")
        print_summary(line)
        return findings
    finally:
        for w in workers:
            w.stop()
        backend.close()


def summary_line(name: str, seconds: float, rate: float, faults: list[Fault],
                 f: Findings, producer: Producer, drain: float) -> dict[str, Any]:  # fmt: skip
    by_kind: dict[str, int] = {}
    for fault in faults:
        by_kind[fault.kind] = by_kind.get(fault.kind, 0) + 1
    return {
        "summary": name,
        "seconds_of_faults": seconds,
        "rate": rate,
        "faults": dict(sorted(by_kind.items())),
        "jobs": f.jobs,
        "enqueues_refused": producer.refused,
        "lost": len(f.lost),
        "duplicate_successes": len(f.duplicate_successes),
        "overlapping_accepted_attempts": len(f.overlapping_attempts),
        "stale_final": len(f.stale_final),
        "refused_late_writes": f.refused_writes,
        "dead_by_reason": f.dead_by_reason,
        "dead_without_reason": len(f.dead_without_reason),
        "samples": f.samples,
        "seen_while_running": len(f.continuous),
        "early_starts": len(f.early_starts),
        "max_pool": f.max_pool,
        "pool_limit": POOL,
        "max_running": f.max_running,
        "parallelism": PARALLELISM,
        "recovery_p50_max": {k: summary(v) for k, v in sorted(f.recovery.items())},
        "drain_seconds": round(drain, 1),
        "violations": f.violations(POOL, PARALLELISM),
        "details": {
            "lost": f.lost[:20],
            "duplicate_successes": f.duplicate_successes[:20],
            "overlapping": f.overlapping_attempts[:20],
            "stale_final": f.stale_final[:20],
            "seen_while_running": f.continuous[:20],
            "early_starts": f.early_starts[:20],
        },
    }


def print_summary(line: dict[str, Any]) -> None:
    print(json.dumps({k: v for k, v in line.items() if k != "details"}), flush=True)


def _interrupt(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", action="append", choices=sorted(BACKENDS))
    parser.add_argument("--minutes", type=float, default=1.0, help="of faults, per backend")
    parser.add_argument("--rate", type=float, default=15.0, help="jobs enqueued a second")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--soak-minutes", type=float, default=0.0, help="soak instead of chaos")
    args = parser.parse_args(argv)
    # SIGTERM (and SIGINT, which a background shell ignores) end the run through its
    # cleanup: workers continued and stopped, the proxy closed, the tmpfs unmounted
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, _interrupt)
    results = ROOT / "bench" / "results"
    results.mkdir(exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    failed = False
    for name in args.backend or sorted(BACKENDS):
        if args.soak_minutes:
            from bench.chaos_soak import run_soak

            run_soak(name, args.soak_minutes * 60, results / f"soak-{name}-{stamp}.jsonl")
            continue
        out = results / f"chaos-{name}-{stamp}.jsonl"
        findings = run_chaos(name, args.minutes * 60, args.rate, args.seed, out)
        failed |= bool(findings.violations(POOL, PARALLELISM))
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
