"""Middleware in a real worker on SQLite: a claim refused then allowed, a hook that raises,
and ``around_execute`` where the function runs (a slot's thread, the event loop, a child
process)."""

from __future__ import annotations

import importlib
import os
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

import faena
from faena.core import events as ev
from faena.core.middleware import Middleware, WorkerInfo
from faena.errors import JobFailedError
from faena.worker import Worker


def wait_for(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out after {timeout} s waiting for {what}"
        time.sleep(0.02)


class Gate(Middleware):
    """Refuses every claim until opened; counts the turns it refused."""

    def __init__(self) -> None:
        self.open = threading.Event()
        self.refused = 0
        self.granted: list[int] = []
        self.claimed = 0
        self.lifecycle: list[tuple[str, WorkerInfo]] = []

    def on_worker_start(self, worker: WorkerInfo) -> None:
        self.lifecycle.append(("start", worker))

    def on_worker_stop(self, worker: WorkerInfo) -> None:
        self.lifecycle.append(("stop", worker))

    def before_claim(self, queues: Sequence[str], limit: int) -> int:
        if not self.open.is_set():
            self.refused += 1
            return 0
        self.granted.append(limit)
        return limit

    def after_claim(self, jobs: Sequence[faena.Job]) -> None:
        self.claimed += len(jobs)


class FlakyBeforeClaim(Middleware):
    def __init__(self, failures: int) -> None:
        self.failures = failures

    def before_claim(self, queues: Sequence[str], limit: int) -> int:
        if self.failures > 0:
            self.failures -= 1
            raise ConnectionError("rate-limit store unreachable")
        return limit


@pytest.fixture
def sqlite_app(tmp_path: Path) -> Iterator[faena.App]:
    app = faena.App(broker=f"sqlite:///{tmp_path / 'faena.db'}")
    yield app
    app.close()


def start(app: faena.App, **options: Any) -> tuple[Worker, threading.Thread]:
    w = Worker(app, install_signals=False, concurrency=2, **options)
    t = threading.Thread(target=w.run, daemon=True)
    t.start()
    return w, t


def test_a_refused_claim_leaves_jobs_queued_until_the_middleware_allows(
    sqlite_app: faena.App,
) -> None:
    app = sqlite_app

    @app.task
    def double(x: int) -> int:
        return 2 * x

    gate = Gate()
    handles = [double.enqueue(i) for i in range(3)]
    w, t = start(app, middleware=[gate])
    try:
        wait_for(lambda: gate.refused >= 3, 10, "the worker to ask again after a refusal")
        assert [h.state for h in handles] == [faena.JobState.QUEUED] * 3
        assert gate.claimed == 0
        gate.open.set()
        assert [h.wait(timeout=20) for h in handles] == [0, 2, 4]
        assert gate.claimed == 3
        assert all(0 < n <= 2 for n in gate.granted)
    finally:
        w.stop(graceful=False)
        t.join(20)
    info = WorkerInfo(w.name, tuple(w.queues), 2)
    assert gate.lifecycle == [("start", info), ("stop", info)]


def test_a_before_claim_that_raises_skips_the_turn_and_is_logged(sqlite_app: faena.App) -> None:
    app = sqlite_app
    errors: list[dict[str, Any]] = []
    app.events.subscribe(ev.WORKER_MIDDLEWARE_ERROR, lambda e: errors.append(dict(e.fields)))

    @app.task
    def echo(x: int) -> int:
        return x

    handle = echo.enqueue(7)
    w, t = start(app, middleware=[FlakyBeforeClaim(failures=2)])
    try:
        assert handle.wait(timeout=20) == 7  # the job is not lost: a later turn claims it
    finally:
        w.stop(graceful=False)
        t.join(20)
    assert len(errors) == 2
    assert errors[0]["middleware"] == "FlakyBeforeClaim"
    assert errors[0]["hook"] == "before_claim"
    assert errors[0]["error_type"] == "ConnectionError"


APP_SOURCE = """
import asyncio
import os

import faena
from faena.core.middleware import Middleware, WorkerInfo

LOG = {log!r}


class Span(Middleware):
    def _note(self, job, what):
        with open(LOG, "a") as f:
            f.write(f"{{job.task}} {{os.getpid()}} {{what}}\\n")

    def around_execute(self, job, call):
        if job.task.endswith("explode"):
            raise RuntimeError("span exporter down")
        self._note(job, "enter")
        try:
            return call()
        finally:
            self._note(job, "exit")

    async def around_execute_async(self, job, call):
        self._note(job, "enter")
        try:
            return await call()
        finally:
            self._note(job, "exit")


app = faena.App(middleware=[Span()])


@app.task(name="mw.thread", isolation="thread")
def in_thread():
    return os.getpid()


@app.task(name="mw.process", isolation="process")
def in_process():
    return os.getpid()


@app.task(name="mw.async")
async def in_loop():
    await asyncio.sleep(0)
    return os.getpid()


@app.task(name="mw.thread_explode", isolation="thread", retries=0)
def thread_explode():
    return 1


@app.task(name="mw.process_explode", isolation="process", retries=0)
def process_explode():
    return 1
"""


@pytest.fixture
def span_app(tmp_path: Path) -> Iterator[tuple[faena.App, Path]]:
    name = f"mwapp_{uuid.uuid4().hex[:8]}"
    log = tmp_path / "spans.log"
    (tmp_path / f"{name}.py").write_text(APP_SOURCE.format(log=str(log)))
    sys.path.insert(0, str(tmp_path))
    try:
        app = importlib.import_module(name).app
        app.use_broker(f"sqlite:///{tmp_path / 'faena.db'}")
        app.import_path = f"{name}:app"
        yield app, log
        app.close()
    finally:
        sys.path.remove(str(tmp_path))


@pytest.mark.slow
def test_around_execute_wraps_jobs_where_they_run(span_app: tuple[faena.App, Path]) -> None:
    app, log = span_app
    thread = app.enqueue("mw.thread")
    process = app.enqueue("mw.process")
    loop = app.enqueue("mw.async")
    w, t = start(app)
    try:
        in_thread, in_process, in_loop = (h.wait(timeout=60) for h in (thread, process, loop))
    finally:
        w.stop(graceful=False)
        t.join(20)
    assert in_thread == os.getpid() == in_loop
    assert in_process != os.getpid()  # the job ran in a child process ...
    lines = log.read_text().splitlines()
    for task, pid in (("mw.thread", in_thread), ("mw.process", in_process), ("mw.async", in_loop)):
        # ... and so did its wrap, around it
        assert [ln for ln in lines if ln.startswith(task + " ")] == [
            f"{task} {pid} enter",
            f"{task} {pid} exit",
        ]


@pytest.mark.slow
def test_an_around_execute_error_fails_the_attempt_naming_the_middleware(
    span_app: tuple[faena.App, Path],
) -> None:
    app, _ = span_app
    handles = [app.enqueue("mw.thread_explode"), app.enqueue("mw.process_explode")]
    w, t = start(app)
    try:
        for h in handles:
            with pytest.raises(JobFailedError) as info:
                h.wait(timeout=60)
            assert info.value.error_type == "MiddlewareError"
            assert "middleware 'Span' raised RuntimeError in around_execute" in str(
                info.value.error_message
            )
    finally:
        w.stop(graceful=False)
        t.join(20)
