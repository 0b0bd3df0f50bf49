"""Celery canvas beside faena's pipelines (bench/pipelines.py), on Redis: a chain of N no-op
tasks, the same N tasks chained by a client (delay, get, delay the next), a fan-out / fan-in
(one task, a chord of N, one join) and N independent tasks drained. One Celery worker process
with the threads pool, concurrency 4 (faena's bench runs one worker of concurrency 4), its
broker and result backend a redis-server of this run's own on a free port (never the shared
one: nothing is flushed). Run with the peers' virtualenv (bench/run_peers.sh makes it):

    bench/.venv-peers/bin/python bench/peers/celery_canvas.py [--steps 1000]

One JSON line per figure, in bench/pipelines.py's shape.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

APP = """
from celery import Celery
app = Celery("canvas", broker={broker!r}, backend={backend!r})
app.conf.worker_prefetch_multiplier = 1
app.conf.result_expires = 3600
@app.task
def noop(*_args):
    return None
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def emit(metric: str, value: float, unit: str, version: str, **extra: object) -> None:
    line = {"system": "celery", "version": version, "broker": "redis", "metric": metric,
            "value": round(value, 4), "unit": unit, **extra}  # fmt: skip
    print(json.dumps(line), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=1000)
    opts = parser.parse_args()
    n = opts.steps
    work = Path(tempfile.mkdtemp(prefix="celery-canvas-"))
    port = free_port()
    redis_proc = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--dir", str(work)],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"redis://127.0.0.1:{port}"
    (work / "canvas_app.py").write_text(APP.format(broker=f"{url}/0", backend=f"{url}/1"))
    sys.path.insert(0, str(work))
    worker = None
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.05)
        import celery
        from canvas_app import noop  # type: ignore[import-not-found]
        from celery import chain, chord, group

        worker = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "canvas_app", "worker", "-P", "threads",
             "-c", "4", "-l", "WARNING", "--without-mingle", "--without-gossip"],
            cwd=work, env={**os.environ, "PYTHONPATH": str(work)}, start_new_session=True,
            stdout=subprocess.DEVNULL,  # its banner; warnings go to stderr
        )  # fmt: skip
        noop.delay().get(timeout=60)  # warm: the worker is consuming
        version = celery.__version__

        t = time.perf_counter()
        chain(*[noop.si() for _ in range(n)]).apply_async().get(timeout=600)
        emit("chain_per_step", (time.perf_counter() - t) / n * 1000, "ms", version, steps=n)

        t = time.perf_counter()
        for _ in range(n):
            noop.delay().get(timeout=60)
        emit("client_chain_per_step", (time.perf_counter() - t) / n * 1000, "ms", version,
             steps=n)  # fmt: skip

        t = time.perf_counter()
        flow = chain(noop.si(), chord([noop.si() for _ in range(n)], noop.si()))
        flow.apply_async().get(timeout=600)
        emit("fan_out_in", time.perf_counter() - t, "s", version, width=n)

        t = time.perf_counter()
        group(noop.si() for _ in range(n)).apply_async().get(timeout=600)
        emit("independent_drain", time.perf_counter() - t, "s", version, jobs=n)
    finally:
        if worker is not None:
            os.killpg(worker.pid, signal.SIGTERM)
            try:
                worker.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(worker.pid, signal.SIGKILL)
        redis_proc.terminate()
        redis_proc.wait(timeout=10)


if __name__ == "__main__":
    main()
