"""The ``process`` executor: one child process per slot, killed on timeout or cancel."""

from __future__ import annotations

import importlib
import json
import os
import queue
import socket
import subprocess
import sys
import threading
import time
from multiprocessing.connection import Connection
from typing import Any

from faena.core.job import ErrorInfo, Job
from faena.core.middleware import Chain
from faena.errors import ConfigError
from faena.task import Task
from faena.worker.executors import crash_result
from faena.worker.invoke import run_sync, timeout_error
from faena.worker.results import Completions, RunResult

CHILD_PATH_ENV = "FAENA_CHILD_SYS_PATH"


def load_app(path: str) -> Any:
    module_name, _, attr = path.partition(":")
    module = importlib.import_module(module_name)
    return getattr(module, attr or "app")


def child_main(app_path: str, fd: int) -> None:
    """Entry point of a job process (``python -m faena.worker.child``)."""
    conn = Connection(fd)
    app = load_app(app_path)
    # the app's middleware wrap each job here, where its function runs (a Worker's own
    # middleware stays in the worker process: docs/middleware.md)
    middleware = Chain(getattr(app, "middleware", ()))
    while True:
        try:
            msg = conn.recv()
        except EOFError:
            return
        if msg is None:
            return
        job: Job = msg
        task = app.get_task(job.task)
        r = run_sync(job, task, middleware)
        error = None if r.error is None else (r.error.type, r.error.message, r.error.traceback)
        conn.send((r.duration, r.result_json, error, r.retryable))


class _Slot:
    """One job process, started with a fresh interpreter (no fork of a threaded parent, and
    no re-import of the parent's ``__main__``)."""

    def __init__(self, app_path: str) -> None:
        self.app_path = app_path
        self.proc: subprocess.Popen[bytes] | None = None
        self.conn: Connection | None = None

    def ensure(self) -> Connection:
        if self.proc is None or self.proc.poll() is not None or self.conn is None:
            parent, child = socket.socketpair()
            env = dict(os.environ)
            env[CHILD_PATH_ENV] = json.dumps([p for p in sys.path if p])
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "faena.worker.child", self.app_path, str(child.fileno())],
                pass_fds=(child.fileno(),),
                env=env,
            )
            child.close()
            self.conn = Connection(parent.detach())
        return self.conn

    def kill(self) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.kill()
        code = self.proc.wait(10)
        if self.conn is not None:
            self.conn.close()
        self.proc = None
        self.conn = None
        return code


class ProcessExecutor:
    def __init__(self, slots: int, completions: Completions, app_path: str | None) -> None:
        if not app_path:
            raise ConfigError(
                "isolation='process' needs the app's import path to start job processes; run "
                "the worker with 'faena worker module:app', or set app.import_path"
            )
        self._completions = completions
        self._inbox: queue.SimpleQueue[tuple[Job, Task[Any, Any]] | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._slots: dict[str, _Slot] = {}  # running job id -> its slot
        self._reasons: dict[str, str] = {}
        self._threads = [
            threading.Thread(
                target=self._loop, args=(_Slot(app_path),), daemon=True, name=f"faena-proc-{i}"
            )
            for i in range(slots)
        ]
        for t in self._threads:
            t.start()

    def submit(self, job: Job, task: Task[Any, Any]) -> None:
        self._inbox.put((job, task))

    def _loop(self, slot: _Slot) -> None:
        while True:
            item = self._inbox.get()
            if item is None:
                slot.kill()
                return
            job, _task = item
            self._completions.put(self._run(slot, job))

    def _run(self, slot: _Slot, job: Job) -> RunResult:
        started = time.perf_counter()
        conn = slot.ensure()
        with self._lock:
            self._slots[job.id] = slot
        try:
            conn.send(job)
            deadline = None if job.timeout is None else time.monotonic() + job.timeout
            while True:
                wait = 0.5 if deadline is None else max(0.0, min(0.5, deadline - time.monotonic()))
                if conn.poll(wait):
                    duration, result_json, error, retryable = conn.recv()
                    info = None if error is None else ErrorInfo(*error)
                    return RunResult(job, duration, result_json, info, retryable)
                reason = self._reasons.get(job.id)
                if reason is None and deadline is not None and time.monotonic() >= deadline:
                    reason = "timeout"
                if reason is not None:
                    slot.kill()
                    elapsed = time.perf_counter() - started
                    if reason == "cancelled":
                        return RunResult(job, elapsed, cancelled=True)
                    return RunResult(job, elapsed, error=timeout_error(job), timed_out=True)
        except (EOFError, OSError, BrokenPipeError):
            code = slot.kill()
            return crash_result(job, time.perf_counter() - started, code)
        finally:
            with self._lock:
                self._slots.pop(job.id, None)
                self._reasons.pop(job.id, None)

    def interrupt(self, job_id: str, reason: str) -> None:
        with self._lock:
            if job_id in self._slots:
                self._reasons[job_id] = reason

    def next_deadline(self) -> float | None:
        return None  # each slot thread enforces its own

    def enforce_timeouts(self, now: float) -> None:
        return None

    def shutdown(self) -> None:
        for _ in self._threads:
            self._inbox.put(None)
        with self._lock:
            slots = list(self._slots.values())
        for slot in slots:
            slot.kill()
