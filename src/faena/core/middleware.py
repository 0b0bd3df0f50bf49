"""Middleware: typed hooks around a worker's claims and its jobs' runs, that may act.

Events (:mod:`faena.core.events`) only watch. A :class:`Middleware` may also act: lower the
number of jobs a turn claims (to 0: a rate limiter), wrap the call of a job's function (a
tracing span, a timer) or replace its result. Subclass it and override the hooks you need;
every default does nothing.

Order: the first registered is the outermost. ``before_*`` hooks and ``on_worker_start`` run
first to last, ``after_*`` hooks and ``on_worker_stop`` last to first, and the first
``around_execute`` wraps all the others. A hook that raises never loses a job
(:class:`Chain` states what happens in each case).
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Literal, TypeVar, get_args

from faena.core.frozen import quick_init
from faena.core.job import Job, Outcome
from faena.errors import MiddlewareError

T = TypeVar("T")

Hook = Literal[
    "on_worker_start",
    "on_worker_stop",
    "before_claim",
    "after_claim",
    "before_execute",
    "around_execute",
    "around_execute_async",
    "after_execute",
]
HOOKS: tuple[Hook, ...] = get_args(Hook)


@dataclass(frozen=True, slots=True)
class WorkerInfo:
    """The worker a middleware runs in."""

    name: str
    queues: tuple[str, ...]
    concurrency: int


@quick_init
@dataclass(frozen=True, slots=True)
class Attempt:
    """An attempt whose outcome was sent to the broker (``after_execute``).

    ``accepted`` is False when the broker refused it: the lease was lost meanwhile and the
    outcome was dropped (another worker runs the job). ``duration`` is in seconds.
    """

    job: Job
    outcome: Outcome
    duration: float
    accepted: bool = True
    timed_out: bool = False


class Middleware:
    """Hooks around claims and runs; override those you need (each default does nothing).

    Where each runs: every hook runs in the worker process, on the dispatcher's thread or a
    slot's thread (keep them quick and thread-safe), except the ``around_execute`` pair,
    which runs where the job's function runs: a slot's thread (``thread``), the event loop
    (``async``: :meth:`around_execute_async`) or the job's own process (``process``: only
    the app's middleware, see docs/middleware.md).
    """

    @property
    def name(self) -> str:
        """How errors and logs name this middleware (the class name by default)."""
        return type(self).__name__

    def on_worker_start(self, worker: WorkerInfo) -> None:
        """The worker starts (before its first claim)."""

    def on_worker_stop(self, worker: WorkerInfo) -> None:
        """The worker stopped (its jobs are reported or released)."""

    def before_claim(self, queues: Sequence[str], limit: int) -> int:
        """A turn is about to claim up to ``limit`` jobs (> 0) from ``queues``: return how
        many it may claim, from 0 (claim nothing this turn) to ``limit`` (more is cut to
        ``limit``). A refused turn is tried again soon, as after a full pool."""
        return limit

    def after_claim(self, jobs: Sequence[Job]) -> None:
        """A turn claimed ``jobs`` (never empty); they hold leases now."""

    def before_execute(self, job: Job) -> None:
        """``job`` is handed to its executor (in the worker process)."""

    def around_execute(self, job: Job, call: Callable[[], T]) -> T:
        """Wrap the call of a sync job's function (thread and process executors): call
        ``call()`` and return what it returns (or another result); its exceptions are the
        job's, let them through. An exception of the middleware's own fails the attempt
        with a :class:`~faena.errors.MiddlewareError` naming it."""
        return call()

    async def around_execute_async(self, job: Job, call: Callable[[], Awaitable[T]]) -> T:
        """:meth:`around_execute` for a coroutine job (the async executor)."""
        return await call()

    def after_execute(self, attempt: Attempt) -> None:
        """An attempt's outcome was sent to the broker (see :class:`Attempt`)."""


@dataclass(frozen=True, slots=True)
class HookFailure:
    """A middleware hook raised: what the chain tells its error reporter."""

    middleware: str
    hook: Hook
    error: Exception
    job: Job | None = None


ErrorReporter = Callable[[HookFailure], None]


def _ignore(failure: HookFailure) -> None:
    pass


def _overrides(m: Middleware, hook: Hook) -> bool:
    return getattr(type(m), hook) is not getattr(Middleware, hook)


class _Inner:
    """The ``call`` a middleware wraps; remembers what the call raised, so an exception
    that leaves the middleware is known as the job's (or a deeper middleware's) or its own."""

    __slots__ = ("raised",)

    def __init__(self) -> None:
        self.raised: BaseException | None = None


def _own_error(m: Middleware, hook: Hook, job: Job, exc: Exception) -> MiddlewareError:
    return MiddlewareError(
        f"middleware {m.name!r} raised {type(exc).__name__} in {hook} for job {job.id} "
        f"({job.task}): {exc}; the attempt fails as if the job had raised it (fix the "
        f"middleware, or catch the error inside the hook)",
        middleware=m.name,
        hook=hook,
    )


class Chain:
    """Middleware in registration order (the first is the outermost), and the rules for a
    hook that raises:

    * ``before_claim`` raises (or returns no int): the turn claims nothing; the others that
      finished reported still are; reported as a failure.
    * ``around_execute`` raises an error of its own: the attempt fails with a
      :class:`MiddlewareError` (retried by the task's policy, as any job error).
    * any other hook raises: reported; the other middleware's hooks still run, and the job
      goes on as if the hook had returned.
    """

    def __init__(
        self, middleware: Sequence[Middleware] = (), on_error: ErrorReporter | None = None
    ) -> None:
        self.on_error = on_error or _ignore
        self._all: list[Middleware] = []
        self._by_hook: dict[Hook, list[Middleware]] = {hook: [] for hook in HOOKS}
        for m in middleware:
            self.add(m)

    def add(self, m: Middleware) -> None:
        """Register ``m`` innermost (after every one registered so far)."""
        if not isinstance(m, Middleware):
            raise TypeError(
                f"middleware must be an instance of faena.core.middleware.Middleware, got "
                f"{m!r} ({type(m).__name__}); subclass Middleware and pass an instance"
            )
        self._all.append(m)
        for hook, ms in self._by_hook.items():
            if _overrides(m, hook):
                ms.append(m)

    def __iter__(self) -> Iterator[Middleware]:
        return iter(self._all)

    def __len__(self) -> int:
        return len(self._all)

    def has(self, hook: Hook) -> bool:
        """Whether any middleware overrides ``hook`` (else the caller may skip it)."""
        return bool(self._by_hook[hook])

    def _report(self, m: Middleware, hook: Hook, exc: Exception, job: Job | None) -> None:
        # a reporter that fails must not stop the worker either
        with contextlib.suppress(Exception):
            self.on_error(HookFailure(m.name, hook, exc, job))

    # the worker ------------------------------------------------------------------------
    def worker_started(self, worker: WorkerInfo) -> None:
        for m in self._by_hook["on_worker_start"]:
            try:
                m.on_worker_start(worker)
            except Exception as exc:
                self._report(m, "on_worker_start", exc, None)

    def worker_stopped(self, worker: WorkerInfo) -> None:
        for m in reversed(self._by_hook["on_worker_stop"]):
            try:
                m.on_worker_stop(worker)
            except Exception as exc:
                self._report(m, "on_worker_stop", exc, None)

    # claims ----------------------------------------------------------------------------
    def before_claim(self, queues: Sequence[str], limit: int) -> int:
        """How many jobs the turn may claim: ``limit`` lowered by each middleware in turn
        (one that returns 0 ends the asking: the later ones are not asked)."""
        for m in self._by_hook["before_claim"]:
            if limit <= 0:
                return 0
            try:
                granted = m.before_claim(queues, limit)
                if isinstance(granted, bool) or not isinstance(granted, int):
                    raise TypeError(
                        f"before_claim returned {granted!r} ({type(granted).__name__}); "
                        f"return an int from 0 to the limit it was given ({limit})"
                    )
            except Exception as exc:
                self._report(m, "before_claim", exc, None)
                return 0
            limit = max(0, min(granted, limit))
        return limit

    def after_claim(self, jobs: Sequence[Job]) -> None:
        if not jobs:
            return
        for m in reversed(self._by_hook["after_claim"]):
            try:
                m.after_claim(jobs)
            except Exception as exc:
                self._report(m, "after_claim", exc, None)

    # runs ------------------------------------------------------------------------------
    def before_execute(self, job: Job) -> None:
        for m in self._by_hook["before_execute"]:
            try:
                m.before_execute(job)
            except Exception as exc:
                self._report(m, "before_execute", exc, job)

    def after_execute(self, attempt: Attempt) -> None:
        for m in reversed(self._by_hook["after_execute"]):
            try:
                m.after_execute(attempt)
            except Exception as exc:
                self._report(m, "after_execute", exc, attempt.job)

    def execute(self, job: Job, call: Callable[[], T]) -> T:
        """``call()`` wrapped by every ``around_execute``, the first registered outermost."""
        wrapped: Callable[[], T] = call
        for m in reversed(self._by_hook["around_execute"]):
            wrapped = self._wrap(m, job, wrapped)
        return wrapped()

    @staticmethod
    def _wrap(m: Middleware, job: Job, call: Callable[[], T]) -> Callable[[], T]:
        def run() -> T:
            inner = _Inner()

            def once() -> T:
                try:
                    return call()
                except BaseException as exc:
                    inner.raised = exc
                    raise

            try:
                return m.around_execute(job, once)
            except Exception as exc:
                if exc is inner.raised:
                    raise
                raise _own_error(m, "around_execute", job, exc) from exc

        return run

    async def execute_async(self, job: Job, call: Callable[[], Awaitable[T]]) -> T:
        """``await call()`` wrapped by every ``around_execute_async``, the first outermost."""
        wrapped: Callable[[], Awaitable[T]] = call
        for m in reversed(self._by_hook["around_execute_async"]):
            wrapped = self._wrap_async(m, job, wrapped)
        return await wrapped()

    @staticmethod
    def _wrap_async(
        m: Middleware, job: Job, call: Callable[[], Awaitable[T]]
    ) -> Callable[[], Awaitable[T]]:
        async def run() -> T:
            inner = _Inner()

            async def once() -> T:
                try:
                    return await call()
                except BaseException as exc:
                    inner.raised = exc
                    raise

            try:
                return await m.around_execute_async(job, once)
            except Exception as exc:
                if exc is inner.raised:
                    raise
                raise _own_error(m, "around_execute_async", job, exc) from exc

        return run


NO_MIDDLEWARE = Chain()
