"""A/B drains: faena's counted drain with this checkout's ``src`` (A) and with another source
tree (B), alternately, to see what a change to the worker or a broker's SQL/Lua is worth
before it lands. Each drain times from the first job's end to the last's (start-up left
out) and reads the worker's CPU time, so a change that only moves work elsewhere shows.

    .venv/bin/python bench/ab_drain.py --broker postgres --b-src /tmp/variant/src --pairs 4
    .venv/bin/python bench/ab_drain.py --broker redis --concurrency 1 --concurrency 2

B is a copy of ``src/`` with the change applied. Each drain runs in a fresh interpreter with
its tree first on ``PYTHONPATH``, so the schema (migrations) and the worker both come from
that tree. Without ``--b-src`` it compares the ``--concurrency`` values given (each with A).
Prints one JSON line per drain and then the medians; this machine's speed drifts, so only
the alternation makes A and B comparable. The worker's output goes to ``AB_WORKER_OUT`` (a
file name; default: discarded).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def one_drain(
    kind: str, n: int, concurrency: int, level: str, prefetch: str | None = None
) -> dict[str, object]:
    """Drain ``n`` counted jobs with one worker; the figures of that drain."""

    sys.path.insert(0, str(ROOT / "bench"))
    import bench_faena as bf

    import faena

    tmp = Path(tempfile.mkdtemp())
    url = bf.url_for(kind, tmp, "ab")
    app = bf.fresh_app(url)
    counter_url, finished = bf.counted_backlog(app, n)
    env = bf.worker_env(url, counter_url)
    argv = [sys.executable, "-m", "faena.cli.main", "worker", "bench.benchapp:app"]
    argv += ["--queues", "bench", "--concurrency", str(concurrency)]
    argv += ["--log-format", "json", "--log-level", level]
    if prefetch is not None:
        argv += ["--prefetch", prefetch]
    with open(os.environ.get("AB_WORKER_OUT", os.devnull), "w") as sink:
        proc = subprocess.Popen(argv, env=env, stdout=sink, stderr=subprocess.STDOUT, cwd=ROOT)
    try:
        t0, t1, cpu0, cpu1 = bf.timed_drain(proc, finished, n)
        elapsed = t1 - t0
    finally:
        proc.terminate()
        proc.wait(30)
        bf.cleanup(app)
    done = n - 1
    user, system = cpu1.user - cpu0.user, cpu1.system - cpu0.system
    return {
        "jobs_per_s": round(done / elapsed, 1),
        "worker_cpu_us_per_job": round((user + system) / done * 1e6, 1),
        "worker_user_us_per_job": round(user / done * 1e6, 1),
        "worker_sys_us_per_job": round(system / done * 1e6, 1),
        "worker_cpu_share": round((cpu1.user + cpu1.system - cpu0.user - cpu0.system) / elapsed, 2),
        "faena": str(Path(faena.__file__).parents[1]),
        "load_avg_1m": round(os.getloadavg()[0], 2),  # at the drain's end
    }


def run_one(
    src: Path, args: argparse.Namespace, concurrency: int, prefetch: str | None
) -> dict[str, object]:
    env = dict(os.environ, PYTHONPATH=str(src))
    argv = [sys.executable, __file__, "--one", "--broker", args.broker, "--n", str(args.n)]
    argv += ["--concurrency", str(concurrency), "--log-level", args.log_level]
    if prefetch is not None:
        argv += ["--prefetch", prefetch]
    out = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise SystemExit(f"a drain with {src} failed:\n{out.stderr.strip()}")
    result: dict[str, object] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--broker", choices=["postgres", "redis", "sqlite"], required=True)
    parser.add_argument("--n", type=int, default=20_000, help="jobs per drain")
    parser.add_argument("--pairs", type=int, default=3, help="rounds of A then B")
    parser.add_argument("--b-src", type=Path, help="B: a source tree (a copy of src/)")
    parser.add_argument("--concurrency", type=int, action="append", help="default: 2")
    parser.add_argument("--log-level", default="INFO")
    parser.add_argument(
        "--prefetch",
        action="append",
        help="the worker's --prefetch (auto or N; several: each is a variant; default: the "
        "worker's default)",
    )
    parser.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    levels = args.concurrency or [2]
    if args.one:
        prefetch = args.prefetch[0] if args.prefetch else None
        print(json.dumps(one_drain(args.broker, args.n, levels[0], args.log_level, prefetch)))
        return
    if args.b_src is not None and not (args.b_src / "faena" / "__init__.py").is_file():
        parser.error(f"--b-src {args.b_src} holds no faena package (faena/__init__.py)")
    prefetches: list[str | None] = list(args.prefetch) if args.prefetch else [None]
    trees = [("A", ROOT / "src")]
    if args.b_src is not None:
        trees.append(("B", args.b_src.resolve()))
    variants = [(name, src, c, p) for name, src in trees for c in levels for p in prefetches]
    rates: dict[tuple[str, int, str | None], list[float]] = {}
    cpu: dict[tuple[str, int, str | None], list[float]] = {}
    for r in range(1, args.pairs + 1):
        for name, src, c, p in variants:
            result = run_one(src, args, c, p)
            result.update(variant=name, concurrency=c, round=r, broker=args.broker, n=args.n)
            result.update(prefetch=p if p is not None else "default")
            print(json.dumps(result), flush=True)
            rates.setdefault((name, c, p), []).append(float(str(result["jobs_per_s"])))
            cpu.setdefault((name, c, p), []).append(float(str(result["worker_cpu_us_per_job"])))
    for (name, c, p), values in rates.items():
        shown = "default" if p is None else p
        print(
            f"{name} concurrency {c} prefetch {shown}: "
            f"median {statistics.median(values):,.0f} jobs/s "
            f"({', '.join(f'{v:,.0f}' for v in values)}), worker CPU median "
            f"{statistics.median(cpu[name, c, p]):.1f} us/job",
            file=sys.stderr,
        )


if __name__ == "__main__":
    main()
