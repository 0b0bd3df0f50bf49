"""Registered tasks and the handles producers get back."""

from __future__ import annotations

import inspect
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Generic, ParamSpec, TypeVar, Unpack

from faena.core.job import Job
from faena.core.options import ENQUEUE_OPTION_NAMES, EnqueueOptions, TaskOptions
from faena.core.states import TERMINAL, JobState
from faena.errors import ConfigError, JobFailedError, JobNotFoundError, WaitTimeoutError

if TYPE_CHECKING:
    from faena.app import App

P = ParamSpec("P")
R = TypeVar("R")


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
        import asyncio  # only here: importing faena does not load asyncio (~50 ms)

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
    """A registered callable. Call it to run it here; ``enqueue`` it to run it on a worker.

    ``enqueue(*args, **kwargs)`` takes the function's own arguments, typed as the function's
    (as Celery's ``delay``); options of one job (``idempotency_key``, ``delay``, ``queue``, ...)
    go through ``enqueue_with(args, kwargs, **options)`` (as Celery's ``apply_async``), so a
    task argument can never be taken for an option, nor an option for an argument.
    """

    def __init__(self, app: App, fn: Callable[P, R], options: TaskOptions) -> None:
        self.app = app
        self.fn = fn
        self.options = options
        self.is_async = inspect.iscoroutinefunction(fn)
        self.__doc__ = fn.__doc__
        self.__name__ = getattr(fn, "__name__", options.name)
        self._takes = _keyword_names(fn)

    @property
    def name(self) -> str:
        return self.options.name

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        return self.fn(*args, **kwargs)

    def __repr__(self) -> str:
        return f"<Task {self.name} queue={self.options.queue} pool={self.options.pool}>"

    def enqueue(self, *args: P.args, **kwargs: P.kwargs) -> JobHandle:
        """Enqueue a job that calls the function with these arguments."""
        if kwargs and not ENQUEUE_OPTION_NAMES.isdisjoint(kwargs):
            self._refuse_options(kwargs)
        return self.app.enqueue(self.name, args, kwargs)

    async def enqueue_async(self, *args: P.args, **kwargs: P.kwargs) -> JobHandle:
        import asyncio  # only here: importing faena does not load asyncio (~50 ms)

        return await asyncio.to_thread(lambda: self.enqueue(*args, **kwargs))

    def enqueue_with(
        self,
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        **options: Unpack[EnqueueOptions],
    ) -> JobHandle:
        """Enqueue with options for this job: ``idempotency_key``, ``delay`` (seconds),
        ``run_at`` (POSIX time), ``priority``, ``queue``, ``pool``, ``pool_slots``,
        ``retries``, ``timeout``."""
        return self.app.enqueue(self.name, args, kwargs, **options)

    def enqueue_many(
        self,
        calls: Sequence[tuple[Sequence[Any], Mapping[str, Any]]],
        **options: Unpack[EnqueueOptions],
    ) -> list[JobHandle]:
        """Bulk enqueue ``[(args, kwargs), ...]`` in one broker transaction."""
        return self.app.enqueue_many(self.name, calls, **options)

    def _refuse_options(self, kwargs: Mapping[str, Any]) -> None:
        """An option's name given to ``enqueue`` that the function does not take: say where
        options go (code written for the enqueue of before, which took them there)."""
        stray = sorted(
            k for k in kwargs if k in ENQUEUE_OPTION_NAMES and not self._takes_keyword(k)
        )
        if stray:
            shown = ", ".join(f"{k}={kwargs[k]!r}" for k in stray)
            raise ConfigError(
                f"{self.name}.enqueue() got {shown}, which {self.fn.__name__} does not take; "
                f"options of a job go through enqueue_with: "
                f"{self.__name__}.enqueue_with(args, kwargs, {stray[0]}=...)"
            )

    def _takes_keyword(self, name: str) -> bool:
        return self._takes is None or name in self._takes


def _keyword_names(fn: Callable[..., Any]) -> frozenset[str] | None:
    """The names ``fn`` takes as keywords; None if it takes any (``**kwargs``) or cannot say."""
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return None
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return None
    return frozenset(
        p.name
        for p in params
        if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    )
