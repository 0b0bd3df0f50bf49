"""Where a worker's CPU goes in a drain: ``faena worker`` with default settings (and
``--concurrency 2``, as bench/scaling.py runs it) drains ``--n`` counted no-op jobs under
``yappi`` (CPU clock, every thread); the functions are listed by their own CPU time and by
their inclusive time, as shares of the worker's profiled CPU, with the CPU of each thread.
The profile covers the whole process (start-up included, about 0.3 s of CPU); the profiler
slows every Python call several times, so read the shares and the call counts (turns per
job, wake-ups), not the times. ``--py-spy`` samples the thread holding the GIL instead
(little overhead, but a thread descheduled while it holds the GIL still counts).

    .venv/bin/pip install yappi py-spy   # not dependencies of faena
    .venv/bin/python bench/profile_drain.py --broker redis --n 20000 --top 40
"""

from __future__ import annotations

import argparse
import atexit
import collections
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))


def profiled_worker(out: str) -> None:
    """The worker process: ``faena.cli.main`` under yappi, its stats saved at exit."""
    import yappi

    yappi.set_clock_type("cpu")
    yappi.start(builtins=True, profile_threads=True)

    def save() -> None:
        yappi.stop()
        yappi.get_func_stats().save(out, type="pstat")
        with open(out + ".threads", "w") as f:  # CPU seconds by thread
            for t in yappi.get_thread_stats():
                f.write(f"{t.ttot:8.3f} s  {t.sched_count:7d} scheduled  {t.name}\n")

    atexit.register(save)
    from faena.cli.main import main as cli

    cli()


def report(stats_file: Path, top: int) -> None:
    import pstats

    stats = pstats.Stats(str(stats_file))
    rows = stats.stats  # type: ignore[attr-defined]
    total = sum(tt for (_, _, tt, _, _) in rows.values())
    print(f"profiled CPU {total:.2f} s (own time of every function)")
    threads = Path(str(stats_file) + ".threads")
    if threads.exists():
        print(threads.read_text(), end="")

    def name(key: tuple[str, int, str]) -> str:
        path, line, fn = key
        return f"{fn} ({'/'.join(Path(path).parts[-2:])}:{line})"

    print("own %  calls  function")
    for key, (_, nc, tt, _, _) in sorted(rows.items(), key=lambda kv: -kv[1][2])[:top]:
        print(f"{100 * tt / total:5.1f}  {nc:7d}  {name(key)}")
    print("inclusive %  calls  function")
    for key, (_, nc, _, ct, _) in sorted(rows.items(), key=lambda kv: -kv[1][3])[:top]:
        print(f"{100 * ct / total:5.1f}  {nc:7d}  {name(key)}")


def frames(stack: str) -> list[str]:
    """The frames of one of py-spy's collapsed stacks, outermost first."""
    out = []
    for frame in stack.split(";"):
        name, _, where = frame.partition(" (")
        path = where.split(":")[0]
        out.append(f"{name} ({'/'.join(Path(path).parts[-2:])})")
    return out


def report_spy(raw: Path, top: int) -> None:
    own: collections.Counter[str] = collections.Counter()
    incl: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        fs = frames(stack)
        total += int(count)
        own[fs[-1]] += int(count)
        for f in set(fs):
            incl[f] += int(count)
    print(f"{total} samples of the thread holding the GIL")
    print("own %  function")
    for name, n in own.most_common(top):
        print(f"{100 * n / total:5.1f}  {name}")
    print("inclusive %  function")
    for name, n in incl.most_common(top):
        print(f"{100 * n / total:5.1f}  {name}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--broker", choices=["postgres", "redis", "sqlite"], required=True)
    parser.add_argument("--n", type=int, default=20_000, help="jobs drained")
    parser.add_argument("--top", type=int, default=40)
    parser.add_argument("--concurrency", type=int, default=2, help="as the benchmarks run it")
    parser.add_argument("--rate", type=int, default=1000, help="py-spy: samples a second")
    parser.add_argument("--stats", type=Path, help="keep the profile here (pstats, or stacks)")
    parser.add_argument(
        "--py-spy", action="store_true", help="sample with py-spy --gil instead of yappi"
    )
    args = parser.parse_args()
    import bench_faena as bf

    tmp = Path(tempfile.mkdtemp())
    stats_file = args.stats or tmp / "worker.pstat"
    url = bf.url_for(args.broker, tmp, "profile")
    app = bf.fresh_app(url)
    counter_url, finished = bf.counted_backlog(app, args.n)
    env = bf.worker_env(url, counter_url)
    if args.py_spy:  # sampled from outside once the first job ended
        argv = [sys.executable, "-m", "faena.cli.main"]
    else:
        argv = [sys.executable, __file__, "--profiled-worker", str(stats_file)]
    argv += ["worker", "bench.benchapp:app", "--queues", "bench", "--log-format", "json"]
    argv += ["--concurrency", str(args.concurrency)]
    with open(os.devnull, "w") as sink:
        proc = subprocess.Popen(argv, env=env, stdout=sink, stderr=subprocess.STDOUT, cwd=ROOT)
    try:
        while finished() < 1:
            if proc.poll() is not None:
                raise SystemExit(f"the worker exited with {proc.returncode} before a job ran")
            time.sleep(0.0005)
        sampler = None
        if args.py_spy:
            spy = Path(sys.executable).with_name("py-spy")
            spy_argv = [str(spy), "record", "--pid", str(proc.pid), "--gil", "--format", "raw"]
            spy_argv += ["--rate", str(args.rate), "--output", str(stats_file)]
            quiet = subprocess.DEVNULL
            sampler = subprocess.Popen(spy_argv, stdout=quiet, stderr=quiet)
        t0 = time.perf_counter()
        while finished() < args.n:
            time.sleep(0.005)
        elapsed = time.perf_counter() - t0
        if sampler is not None:
            sampler.send_signal(signal.SIGINT)  # py-spy writes its file and exits
            sampler.wait(30)
    finally:
        proc.terminate()
        proc.wait(60)
        bf.cleanup(app)
    print(f"{args.broker}: {args.n - 1} jobs in {elapsed:.2f} s (profiled: slower than without)")
    (report_spy if args.py_spy else report)(stats_file, args.top)


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--profiled-worker":
        out = sys.argv[2]
        sys.argv = ["faena", *sys.argv[3:]]
        profiled_worker(out)
    else:
        main()
