"""The cost of a pipeline hand-off on each broker: a chain of N no-op steps against N no-op
jobs run one after the other by a client (enqueue, wait, enqueue the next: what a chain
costs without a hand-off in the broker), and a fan-out / fan-in (one root, W parallel steps,
one join) against W independent jobs drained. One worker on a thread of this process
(concurrency 4), the broker in its own store per run. One JSON line per figure.

    python bench/pipelines.py [--broker memory|sqlite|postgres|redis ...] [--steps 1000]

Celery canvas (chain, chord) is not run here: see docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import threading
import time
import uuid
from typing import Any

import faena
from faena.core.dependencies import RunState
from faena.pipelines import Pipeline
from faena.worker import Worker

PG = os.environ.get("FAENA_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/test")
REDIS = os.environ.get("FAENA_BENCH_REDIS", "redis://127.0.0.1:6379/0")


def url_for(kind: str, folder: str) -> str:
    tag = uuid.uuid4().hex[:10]
    return {
        "memory": "memory://",
        "sqlite": f"sqlite:///{folder}/bench-{tag}.db",
        "postgres": f"{PG}?schema=bench_{tag}",
        "redis": f"{REDIS}?prefix=bench{tag}",
    }[kind]


def emit(broker: str, metric: str, value: float, unit: str, **extra: object) -> None:
    line = {"system": "faena", "broker": broker, "metric": metric, "value": round(value, 4),
            "unit": unit, **extra}  # fmt: skip
    print(json.dumps(line), flush=True)


def setup(kind: str, folder: str) -> tuple[faena.App, Any, Worker, threading.Thread]:
    app = faena.App(broker=url_for(kind, folder))

    @app.task(name="noop", queue="bench", retries=0)
    def noop() -> None:
        return None

    worker = Worker(app, install_signals=False, concurrency=4)
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    return app, noop, worker, thread


def wait_run(app: faena.App, run_id: str) -> None:
    while True:
        run = app.broker.get_run(run_id)
        assert run is not None
        if run.state is not RunState.RUNNING:
            assert run.state is RunState.SUCCEEDED, run.state
            return
        time.sleep(0.01)


def one(kind: str, steps: int, folder: str) -> None:
    app, noop, worker, thread = setup(kind, folder)
    try:
        noop.enqueue().wait(timeout=60)  # warm: the worker is claiming
        chain = Pipeline(app, f"chain_{uuid.uuid4().hex[:6]}")
        chain.chain(*[chain.step(f"s{i}", noop) for i in range(steps)])
        t = time.perf_counter()
        run = chain.run()
        wait_run(app, run.id)
        took = time.perf_counter() - t
        emit(kind, "chain_per_step", took / steps * 1000, "ms", steps=steps)
        t = time.perf_counter()
        for _ in range(steps):
            noop.enqueue().wait(timeout=60)
        serial = time.perf_counter() - t
        emit(kind, "client_chain_per_step", serial / steps * 1000, "ms", steps=steps)
        fan = Pipeline(app, f"fan_{uuid.uuid4().hex[:6]}")
        root = fan.step("root", noop)
        wide = [fan.step(f"w{i}", noop, after=root) for i in range(steps)]
        fan.step("join", noop, after=wide)
        t = time.perf_counter()
        run = fan.run()
        wait_run(app, run.id)
        emit(kind, "fan_out_in", time.perf_counter() - t, "s", width=steps)
        t = time.perf_counter()
        handles = app.enqueue_many("noop", [((), {}) for _ in range(steps)])
        for h in handles:
            h.wait(timeout=120)
        emit(kind, "independent_drain", time.perf_counter() - t, "s", jobs=steps)
    finally:
        worker.stop(graceful=False)
        thread.join(10)
        destroy = getattr(app.broker, "destroy", None)
        if callable(destroy):
            destroy()
        app.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--broker", action="append", choices=["memory", "sqlite", "postgres",
                        "redis"])  # fmt: skip
    parser.add_argument("--steps", type=int, default=1000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="faena-bench-pipelines-") as folder:
        for kind in args.broker or ["memory", "sqlite", "postgres", "redis"]:
            one(kind, args.steps, folder)


if __name__ == "__main__":
    main()
