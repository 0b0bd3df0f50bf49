"""Registered tasks and the handles producers get back."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Generic, ParamSpec, TypeVar

from faena.core.job import Job
from faena.core.options import TaskOptions
from faena.core.states import TERMINAL, JobState
from faena.errors import JobFailedError, JobNotFoundError, WaitTimeoutError

if TYPE_CHECKING:
    from faena.app import App

P = ParamSpec("P")
R = TypeVar("R")

#: keyword arguments of ``Task.enqueue`` that are options, not task arguments
ENQUEUE_OPTIONS = ("idempotency_key", "delay", "run_at", "priority")


class JobHandle:
    """A producer's reference to one job."""

    def __init__(self, app: App, job: Job) -> None:
        self._app = app
        self.job = job

    @property
    def id(self) -> str:
        return self.job.id

    def __repr__(self) -> str:
        return f"<JobHandle {self.job.task} {self.id} {self.job.state.value}>"

    def refresh(self) -> Job:
        job = self._app.broker.get(self.id)
        if job is None:
            raise JobNotFoundError(f"job {self.id} no longer exists (pruned after retention?)")
        self.job = job
        return job

    @property
    def state(self) -> JobState:
        return self.refresh().state

    def wait(self, timeout: float | None = None) -> Any:
        """Block until the job ends; return its result or raise :class:`JobFailedError`."""
        deadline = None if timeout is None else time.monotonic() + timeout
        pause = 0.002
        while True:
            job = self.refresh()
            if job.state in TERMINAL:
                return _result_or_raise(job)
            if deadline is not None and time.monotonic() >= deadline:
                raise WaitTimeoutError(
                    f"job {self.id} ({job.task}) is still {job.state.value} after {timeout} s; "
                    f"wait longer, or check that a worker consumes queue {job.queue!r}"
                )
            time.sleep(pause if deadline is None else min(pause, deadline - time.monotonic()))
            pause = min(pause * 1.5, 0.25)

    async def wait_async(self, timeout: float | None = None) -> Any:
        deadline = None if timeout is None else time.monotonic() + timeout
        pause = 0.002
        while True:
            job = await asyncio.to_thread(self.refresh)
            if job.state in TERMINAL:
                return _result_or_raise(job)
            if deadline is not None and time.monotonic() >= deadline:
                raise WaitTimeoutError(
                    f"job {self.id} is still {job.state.value} after {timeout} s"
                )
            await asyncio.sleep(pause)
            pause = min(pause * 1.5, 0.25)


def _result_or_raise(job: Job) -> Any:
    if job.state is JobState.SUCCEEDED:
        return job.result
    err = job.error
    raise JobFailedError(
        f"job {job.id} ({job.task}) ended {job.state.value}"
        + (f": {err.type}: {err.message}" if err else ""),
        error_type=err.type if err else None,
        error_message=err.message if err else None,
    )


class Task(Generic[P, R]):
    """A registered callable. Call it to run it here; ``enqueue`` it to run it on a worker."""

    def __init__(self, app: App, fn: Callable[P, R], options: TaskOptions) -> None:
        self.app = app
        self.fn = fn
        self.options = options
        self.is_async = inspect.iscoroutinefunction(fn)
        self.__doc__ = fn.__doc__
        self.__name__ = getattr(fn, "__name__", options.name)

    @property
    def name(self) -> str:
        return self.options.name

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        return self.fn(*args, **kwargs)

    def __repr__(self) -> str:
        return f"<Task {self.name} queue={self.options.queue} pool={self.options.pool}>"

    def enqueue(self, *args: Any, **kwargs: Any) -> JobHandle:
        """Enqueue with these arguments; ``idempotency_key``, ``delay`` (seconds), ``run_at``
        (POSIX time) and ``priority`` are options, not arguments."""
        options = {k: kwargs.pop(k) for k in ENQUEUE_OPTIONS if k in kwargs}
        return self.app.enqueue(self.name, args, kwargs, **options)

    async def enqueue_async(self, *args: Any, **kwargs: Any) -> JobHandle:
        return await asyncio.to_thread(lambda: self.enqueue(*args, **kwargs))

    def enqueue_with(
        self,
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> JobHandle:
        """Enqueue with explicit options (also ``queue``), when a task argument shares a name
        with an option."""
        return self.app.enqueue(self.name, args, kwargs, **options)

    def enqueue_many(
        self, calls: Sequence[tuple[Sequence[Any], Mapping[str, Any]]], **options: Any
    ) -> list[JobHandle]:
        """Bulk enqueue ``[(args, kwargs), ...]`` in one broker transaction."""
        return self.app.enqueue_many(self.name, calls, **options)
