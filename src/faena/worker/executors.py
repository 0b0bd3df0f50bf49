"""Executors run jobs; each reports every attempt's end to a :class:`Completions` inbox.

* ``thread``: a thread per slot. Timeouts and cancels raise :class:`JobInterrupted` inside the
  job's thread (cooperative: code blocked in C, or in a long ``time.sleep``, notices only when
  it returns to Python bytecode).
* ``async``: one event loop thread; timeouts and cancels cancel the coroutine (cooperative).
* ``process``: a child process per slot; a timeout or cancel kills the child (hard).
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Protocol

from faena.context import set_current_job
from faena.core.job import Job
from faena.core.middleware import NO_MIDDLEWARE, Chain
from faena.core.options import Isolation
from faena.core.outcomes import error_info
from faena.task import Task
from faena.worker.invoke import (
    JobInterrupted,
    decode_call,
    result_from_error,
    result_from_value,
    run_sync,
    timeout_error,
)
from faena.worker.results import Completions, RunResult

if TYPE_CHECKING:
    import asyncio


def isolation_for(task: Task[Any, Any], forced: Isolation | None) -> Isolation:
    """The executor a job of ``task`` runs in: the worker's, else the task's, else async for
    a coroutine and thread otherwise (a plain function never runs in the event loop)."""
    kind = forced or task.options.isolation
    if kind is None:
        kind = Isolation.ASYNC if task.is_async else Isolation.THREAD
    if kind is Isolation.ASYNC and not task.is_async:
        kind = Isolation.THREAD
    return kind


class Executor(Protocol):
    def submit(self, job: Job, task: Task[Any, Any]) -> None: ...

    def interrupt(self, job_id: str, reason: str) -> None:
        """Stop a running job: ``reason`` is ``timeout`` or ``cancelled``."""

    def next_deadline(self) -> float | None:
        """Monotonic time of the next timeout this executor enforces from outside."""

    def enforce_timeouts(self, now: float) -> None: ...

    def shutdown(self) -> None: ...


class ThreadExecutor:
    def __init__(
        self,
        slots: int,
        completions: Completions,
        ended: Callable[[RunResult], None] | None = None,
        middleware: Chain = NO_MIDDLEWARE,
    ) -> None:
        """``ended`` is called on the slot's thread when a job ends (by default the result is
        put in ``completions``); ``middleware`` wraps each job's call (``around_execute``)."""
        self._ended = ended or completions.put
        self._middleware = middleware
        self._inbox: queue.SimpleQueue[tuple[Job, Task[Any, Any]] | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        # job id -> (thread ident, 0 until a thread takes it; monotonic deadline)
        self._running: dict[str, tuple[int, float | None]] = {}
        self._interrupted: dict[str, str] = {}
        self._threads = [
            threading.Thread(target=self._loop, name=f"faena-job-{i}", daemon=True)
            for i in range(slots)
        ]
        for t in self._threads:
            t.start()

    def submit(self, job: Job, task: Task[Any, Any]) -> None:
        # the deadline counts from here, so the dispatcher sees it as soon as it has handed
        # the job over (before a slot thread picks it up)
        deadline = None if job.timeout is None else time.monotonic() + job.timeout
        with self._lock:
            self._running[job.id] = (0, deadline)
        self._inbox.put((job, task))

    def _loop(self) -> None:
        ident = threading.get_ident()
        while True:
            item = self._inbox.get()
            if item is None:
                return
            job, task = item
            with self._lock:
                self._running[job.id] = (ident, self._running[job.id][1])
                stopped_early = job.id in self._interrupted  # before this thread took it
            if stopped_early:
                result = RunResult(job, 0.0)
            else:
                try:
                    result = run_sync(job, task, self._middleware)
                except JobInterrupted as exc:  # arrived between the job's end and here
                    result = result_from_error(job, task, exc, time.perf_counter())
            with self._lock:
                self._running.pop(job.id, None)
                reason = self._interrupted.pop(job.id, None)
            # the interrupt is raised as a bare class (no reason): the executor's record decides
            if reason == "timeout":
                result = RunResult(job, result.duration, error=timeout_error(job), timed_out=True)
            elif reason == "cancelled":
                result = RunResult(job, result.duration, cancelled=True)
            self._ended(result)

    def interrupt(self, job_id: str, reason: str) -> None:
        import ctypes  # loaded by the first interrupt, not by every worker's start

        with self._lock:
            entry = self._running.get(job_id)
            if entry is None or job_id in self._interrupted:
                return
            self._interrupted[job_id] = reason
            if entry[0]:  # a thread runs it (otherwise its thread sees the record first)
                ctypes.pythonapi.PyThreadState_SetAsyncExc(
                    ctypes.c_ulong(entry[0]), ctypes.py_object(JobInterrupted)
                )

    def next_deadline(self) -> float | None:
        with self._lock:
            deadlines = [
                d
                for jid, (_, d) in self._running.items()
                if d is not None and jid not in self._interrupted
            ]
        return min(deadlines, default=None)

    def enforce_timeouts(self, now: float) -> None:
        with self._lock:
            late = [
                jid
                for jid, (_, d) in self._running.items()
                if d is not None and d <= now and jid not in self._interrupted
            ]
        for jid in late:
            self.interrupt(jid, "timeout")

    def shutdown(self) -> None:
        for _ in self._threads:
            self._inbox.put(None)


class AsyncExecutor:
    """Runs ``async def`` tasks on an event loop of its own thread. asyncio is imported
    here, by the first worker with an async task, not by every worker (start-up time)."""

    def __init__(self, completions: Completions, middleware: Chain = NO_MIDDLEWARE) -> None:
        import asyncio

        self._completions = completions
        self._middleware = middleware
        self._loop = asyncio.new_event_loop()
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._reasons: dict[str, str] = {}
        self._thread = threading.Thread(target=self._run_loop, name="faena-async", daemon=True)
        self._thread.start()

    def _run_loop(self) -> None:
        import asyncio

        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_forever()
        finally:
            self._loop.close()  # stopped by shutdown(): its self-pipe sockets go with it

    def submit(self, job: Job, task: Task[Any, Any]) -> None:
        self._loop.call_soon_threadsafe(self._start, job, task)

    def _start(self, job: Job, task: Task[Any, Any]) -> None:
        self._tasks[job.id] = self._loop.create_task(self._run(job, task))

    async def _run(self, job: Job, task: Task[Any, Any]) -> None:
        import asyncio

        started = time.perf_counter()
        set_current_job(job)  # each asyncio task runs in its own copy of the context
        try:
            args, kwargs = decode_call(job)
            coro = self._call(job, task, args, kwargs)
            value = await asyncio.wait_for(coro, job.timeout) if job.timeout else await coro
            result = result_from_value(job, task, value, started)
        except TimeoutError:
            result = RunResult(
                job, time.perf_counter() - started, error=timeout_error(job), timed_out=True
            )
        except asyncio.CancelledError:
            reason = self._reasons.pop(job.id, "cancelled")
            result = result_from_error(job, task, JobInterrupted(reason), started)
        except BaseException as exc:
            result = result_from_error(job, task, exc, started)
        self._tasks.pop(job.id, None)
        self._completions.put(result)

    def _call(
        self, job: Job, task: Task[Any, Any], args: list[Any], kwargs: dict[str, Any]
    ) -> Awaitable[Any]:
        if not self._middleware.has("around_execute_async"):
            return task.fn(*args, **kwargs)  # type: ignore[no-any-return]
        return self._middleware.execute_async(job, lambda: task.fn(*args, **kwargs))

    def interrupt(self, job_id: str, reason: str) -> None:
        def cancel() -> None:
            t = self._tasks.get(job_id)
            if t is not None:
                self._reasons[job_id] = reason
                t.cancel()

        self._loop.call_soon_threadsafe(cancel)

    def next_deadline(self) -> float | None:
        return None  # wait_for enforces timeouts inside the loop

    def enforce_timeouts(self, now: float) -> None:
        return None

    def shutdown(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)


def crash_result(job: Job, duration: float, exitcode: int | None) -> RunResult:
    exc = RuntimeError(
        f"the process running job {job.id} ({job.task}) exited with code {exitcode} "
        f"before reporting a result (os._exit, a signal, or out of memory)"
    )
    info = error_info(exc, type_name="ProcessExited")
    return RunResult(job, duration, error=info, retryable=True)
