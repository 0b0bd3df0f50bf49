"""The application object: task registry, broker connection, producer API."""

from __future__ import annotations

import enum
import inspect
import threading
from collections.abc import Callable, Mapping, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any, ParamSpec, Protocol, TypeVar, Unpack, overload

from faena.brokers.protocol import Broker
from faena.brokers.url import describe_url, open_broker, resolve_url
from faena.core import checks, payload
from faena.core.clock import SYSTEM_CLOCK, Clock
from faena.core.events import JOB_ENQUEUED, Event, EventBus
from faena.core.job import NewJob, new_job_id, new_job_ids
from faena.core.lease import DEFAULT_LEASE_SECONDS, check_lease
from faena.core.logsink import LogSink
from faena.core.middleware import Chain, Middleware
from faena.core.options import (
    DEFAULT_QUEUE,
    ENQUEUE_OPTION_NAMES,
    TASK_OPTION_NAMES,
    EnqueueOptions,
    Isolation,
    TaskOptionArgs,
    TaskOptions,
    normalize_retry_on,
)
from faena.core.pools import DEFAULT_POOL, check_name, check_pools
from faena.core.retention import DEFAULT_RETENTION_SECONDS, check_retention
from faena.core.retry import RetryPolicy
from faena.core.states import JobState
from faena.defaults import default_log_sink
from faena.errors import ConfigError, PayloadError, StoreNotFoundError, UnknownTaskError
from faena.task import JobHandle, Task

if TYPE_CHECKING:  # loaded by the first app.schedule (a worker of an app without any skips it)
    from faena.schedules.spec import Schedule, ScheduleTarget

P = ParamSpec("P")
R = TypeVar("R")


class TaskDecorator(Protocol):
    """What ``@app.task(...)`` with options returns: it registers the function it is given."""

    def __call__(self, fn: Callable[P, R], /) -> Task[P, R]: ...


#: enqueue options checked as they are given (the task's own were checked at registration)
_OPTION_CHECKS: dict[str, Callable[[str, Any], Any]] = {
    "priority": checks.check_priority,
    "pool_slots": checks.check_pool_slots,
    "timeout": checks.check_timeout,
    "run_at": checks.check_run_at,
    "idempotency_key": checks.check_key,
}


class KeepStored(enum.Enum):
    """The default of ``App(parallelism=...)``: leave the store's cap as it is."""

    KEEP = "keep"


class App:
    """Tasks, pools and a broker::

        app = faena.App(broker="sqlite:///faena.db", pools={"etl_pool": 24}, parallelism=64)

    The broker is opened (and its schema created or migrated, pools and parallelism applied)
    on first use. ``parallelism``: the cap on jobs running at once across every worker;
    ``None`` lifts it; left out, the store's cap is left as it is (a producer's or a
    command's bare app never lifts the workers' cap). Pools declared here are created or
    resized then: the code is the source of truth, ``faena pools set`` adjusts sizes until
    the next start. ``log_sink``: where its workers' event lines go
    (:data:`faena.core.logsink.NO_LOGS`: nowhere). ``middleware``: hooks around its
    workers' claims and runs, the first outermost (docs/middleware.md).
    """

    def __init__(
        self,
        broker: str | Broker | None = None,
        *,
        pools: Mapping[str, int] | None = None,
        parallelism: int | KeepStored | None = KeepStored.KEEP,
        lease_seconds: float = DEFAULT_LEASE_SECONDS,
        max_payload_bytes: int = payload.DEFAULT_MAX_PAYLOAD_BYTES,
        clock: Clock = SYSTEM_CLOCK,
        log_sink: LogSink | None = None,
        middleware: Sequence[Middleware] = (),
        retention: timedelta | float | None = DEFAULT_RETENTION_SECONDS,
    ) -> None:
        self.pools = check_pools(pools or {})
        #: whether opening the broker writes this app's cap (``parallelism`` was given)
        self.sets_parallelism = parallelism is not KeepStored.KEEP
        if isinstance(parallelism, KeepStored):
            parallelism = None
        if parallelism is not None and parallelism < 1:
            raise ConfigError(f"parallelism must be >= 1 (or None for no cap), got {parallelism}")
        self.parallelism: int | None = parallelism
        self.lease_seconds = check_lease(lease_seconds)
        self.max_payload_bytes = max_payload_bytes
        #: finished jobs older than this many seconds are deleted by the app's workers (from
        #: their heartbeat, at most every 10 minutes each); ``None``: kept forever
        self.retention_seconds = check_retention(retention)
        self.clock = clock
        self.events = EventBus()
        #: where the app's workers write their events' lines (default: one JSON or console
        #: line each through ``faena.jobs``, see :mod:`faena.observability.logs`)
        self.log_sink: LogSink = default_log_sink() if log_sink is None else log_sink
        self.tasks: dict[str, Task[Any, Any]] = {}
        #: the schedules declared with :meth:`schedule`, by name
        self.schedules: dict[str, Schedule] = {}
        self.import_path: str | None = None  # "module:attr", set by the CLI
        #: hooks around every worker's claims and runs, the first outermost (see
        #: :mod:`faena.core.middleware`); a process job's child imports the app, so it
        #: runs the ``around_execute`` of these (registered at import time) too
        self.middleware: list[Middleware] = list(Chain(middleware))
        self._broker_arg = broker
        self._broker: Broker | None = None
        self._existing = False
        self._lock = threading.Lock()

    # broker ------------------------------------------------------------------------
    @property
    def broker_url(self) -> str:
        if isinstance(self._broker_arg, str) or self._broker_arg is None:
            return resolve_url(self._broker_arg)
        return f"{self._broker_arg.kind}://"

    @property
    def broker(self) -> Broker:
        if self._broker is None:
            with self._lock:
                if self._broker is None:
                    self._broker = self._open()
        return self._broker

    @property
    def store(self) -> str:
        """The broker URL to show (password hidden, SQLite path absolute)."""
        return describe_url(self.broker_url)

    def open_existing(self) -> None:
        """Use the broker only to read and act on jobs (``faena jobs``, ``pools``, ``queues``):
        a store that does not exist (an SQLite file, a PostgreSQL schema, a Redis prefix with no
        faena data) is refused instead of created, and this app's pools and parallelism are not
        applied (reading never writes them). Call before first use."""
        self._existing = True

    def _open(self) -> Broker:
        if self._broker_arg is None or isinstance(self._broker_arg, str):
            broker = open_broker(self._broker_arg, clock=self.clock, existing=self._existing)
        else:
            broker = self._broker_arg
        if self._existing and not broker.exists():
            if broker is not self._broker_arg:  # opened here from a URL: nobody else holds it
                broker.close()
            where = self.store.removeprefix("sqlite:///")  # an SQLite store: its file
            raise StoreNotFoundError(
                f"no faena store at {where} (a worker, faena migrate or "
                f"faena enqueue creates it, this command does not); point --broker / "
                f"FAENA_BROKER_URL at the store your workers use, or pass --app so its broker "
                f"is used"
            )
        try:
            broker.setup()
            if not self._existing:
                broker.set_pools(self.pools)
                if self.sets_parallelism:
                    broker.set_parallelism(self.parallelism)
        except BaseException:
            if broker is not self._broker_arg:  # opened here from a URL: nobody else holds it
                broker.close()
            raise
        return broker

    def use_broker(self, broker: str | Broker) -> None:
        """Point the app at another broker (the CLI's ``--broker``) before first use."""
        if self._broker is not None:
            self._broker.close()
            self._broker = None
        self._broker_arg = broker

    def close(self) -> None:
        if self._broker is not None:
            self._broker.close()
            self._broker = None

    # tasks -------------------------------------------------------------------------
    @overload
    def task(self, fn: Callable[P, R], /) -> Task[P, R]: ...

    @overload
    def task(self, fn: None = None, /, **options: Unpack[TaskOptionArgs]) -> TaskDecorator: ...

    def task(
        self, fn: Callable[..., Any] | None = None, /, **options: Unpack[TaskOptionArgs]
    ) -> Task[Any, Any] | TaskDecorator:
        """Register a task: ``@app.task`` or ``@app.task(queue="etl", pool="etl_pool", ...)``.

        Options (:class:`~faena.core.options.TaskOptionArgs`): ``name``, ``queue``, ``pool``,
        ``pool_slots``, ``priority``, ``retries``, ``retry_on``, ``timeout`` (seconds),
        ``isolation`` (``async``/``thread``/``process``), ``backoff_base``, ``backoff_cap``
        (seconds). The task keeps the function's signature: ``task.enqueue(...)`` takes the
        function's arguments, and type checkers check them.
        """

        def register(f: Callable[P, R]) -> Task[P, R]:
            opts = self._task_options(f, dict(options))
            if opts.name in self.tasks:
                raise ConfigError(
                    f"task name {opts.name!r} is registered twice; give one of them "
                    f"@app.task(name='...')"
                )
            task: Task[P, R] = Task(self, f, opts)
            self.tasks[opts.name] = task
            return task

        return register(fn) if fn is not None else register

    def _task_options(self, fn: Callable[..., Any], options: dict[str, Any]) -> TaskOptions:
        unknown = set(options) - TASK_OPTION_NAMES
        if unknown:
            raise ConfigError(
                f"unknown task option(s) {sorted(unknown)}; known: "
                f"{', '.join(sorted(TASK_OPTION_NAMES))}"
            )
        name = options.get("name") or f"{fn.__module__}.{fn.__qualname__}"
        isolation = options.get("isolation")
        iso = Isolation(isolation) if isolation is not None else None
        retries = checks.check_retries(name, options.get("retries", 3))
        try:
            retry = RetryPolicy(
                retries=retries,
                backoff_base=options.get("backoff_base", 1.0),
                backoff_cap=options.get("backoff_cap", 300.0),
            )
        except ValueError as exc:
            raise ConfigError(f"task {name}: {exc}") from None
        return TaskOptions(
            name=name,
            queue=options.get("queue", DEFAULT_QUEUE),
            pool=options.get("pool", DEFAULT_POOL),
            pool_slots=options.get("pool_slots", 1),
            priority=options.get("priority", 0),
            timeout=options.get("timeout"),
            isolation=iso,
            retry=retry,
            retry_on=normalize_retry_on(options.get("retry_on")),
        )

    def resolve_task_name(self, name: str) -> str:
        """The registered name ``name`` means: itself if registered, else the one task whose
        function is called ``name`` (``load_table`` for ``myproject.jobs.load_table``).
        Refused (:class:`UnknownTaskError`, listing the candidates) when no task or several
        have that name."""
        if name in self.tasks:
            return name
        matches = sorted(n for n, t in self.tasks.items() if t.fn.__name__ == name)
        if len(matches) == 1:
            return matches[0]
        if matches:
            raise UnknownTaskError(
                f"task name {name!r} is ambiguous: {', '.join(matches)} all have it; give the "
                f"registered name"
            )
        self.get_task(name)  # raises, naming the registered tasks
        return name  # pragma: no cover

    def check_call(self, name: str, args: Sequence[Any], kwargs: Mapping[str, Any]) -> None:
        """Refuse arguments the task's function cannot take (:class:`PayloadError` with the
        signature), before a job that could only fail is enqueued."""
        fn = self.get_task(name).fn
        try:
            signature = inspect.signature(fn)
        except (TypeError, ValueError):  # a builtin or C function: nothing to check against
            return
        try:
            signature.bind(*args, **kwargs)
        except TypeError as exc:
            raise PayloadError(
                f"task {name} takes {fn.__name__}{signature}; the arguments {list(args)!r} "
                f"{dict(kwargs)!r} do not fit it ({exc})"
            ) from None

    def get_task(self, name: str) -> Task[Any, Any]:
        task = self.tasks.get(name)
        if task is None:
            where = self.import_path or "your app module"
            known = ", ".join(sorted(self.tasks)) or "none"
            raise UnknownTaskError(
                f"task {name!r} is not registered in {where} (registered: {known}); define it "
                f"with @app.task(name={name!r}) in a module the worker imports"
            )
        return task

    # schedules ---------------------------------------------------------------------
    def schedule(
        self,
        name: str,
        *,
        task: Task[Any, Any] | str | None = None,
        target: ScheduleTarget | None = None,
        cron: str | None = None,
        tz: str | None = None,
        every: timedelta | float | None = None,
        anchor: float | None = None,
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        tick_kwarg: str | None = None,
        missed: str = "skip",
        catch_up_max: int = 1,
        **options: Unpack[EnqueueOptions],
    ) -> Schedule:
        """Enqueue ``task`` (a registered task or its name) on a schedule: ``cron`` (five
        fields, read in ``tz``, an IANA zone; default UTC) or ``every`` (a timedelta or
        seconds, ticking at ``anchor + k * every``; anchor default the epoch). Each tick is
        enqueued once across every process running the scheduler (docs/schedules.md).
        ``args``, ``kwargs`` and enqueue ``options`` (queue, pool, priority ...) go to each
        job; ``tick_kwarg``: also pass the tick's time (ISO 8601) under that keyword.
        ``missed``: after an outage, ``"skip"`` fires only the latest due tick,
        ``"catch_up"`` the missed ones, oldest first, at most ``catch_up_max``. ``target``
        instead of ``task``: any :class:`~faena.schedules.spec.ScheduleTarget`. Checked in
        full here: a mistake raises :class:`ConfigError` naming the value and the fix."""
        from faena.schedules.declare import declare

        return declare(
            self,
            name,
            task=task,
            target=target,
            cron=cron,
            tz=tz,
            every=every,
            anchor=anchor,
            args=args,
            kwargs=kwargs,
            tick_kwarg=tick_kwarg,
            missed=missed,
            catch_up_max=catch_up_max,
            options=options,
        )

    # producers ---------------------------------------------------------------------
    def new_job(
        self,
        task_name: str,
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        **options: Unpack[EnqueueOptions],
    ) -> NewJob:
        """The job :meth:`enqueue` would write, checked, without writing it (for callers
        that write jobs in an atomic step of their own, such as a schedule's tick)."""
        return self._new_job(self._job_fields(task_name, options), args, kwargs)

    def _job_fields(self, task_name: str, options: Mapping[str, Any]) -> dict[str, Any]:
        """What the jobs of one enqueue call share: the task's options, overridden."""
        unknown = set(options) - ENQUEUE_OPTION_NAMES
        if unknown:
            raise ConfigError(
                f"unknown enqueue option(s) {sorted(unknown)}; known: "
                f"{', '.join(sorted(ENQUEUE_OPTION_NAMES))}"
            )
        name = checks.check_text("task name", task_name)
        task = self.tasks.get(name)
        opts = task.options if task is not None else None
        fields: dict[str, Any] = {
            "task": name,
            "queue": opts.queue if opts else DEFAULT_QUEUE,
            "priority": opts.priority if opts else 0,
            "pool": opts.pool if opts else DEFAULT_POOL,
            "pool_slots": opts.pool_slots if opts else 1,
            "max_attempts": opts.retry.max_attempts if opts else 4,
            "timeout": opts.timeout if opts else None,
            "run_at": None,
            "idempotency_key": None,
        }
        if not options:  # the task's options, checked when it was registered
            return fields
        if options.get("queue"):
            fields["queue"] = check_name("queue", options["queue"])
        if "pool" in options:
            fields["pool"] = check_name("pool", options["pool"])
        for option, check in _OPTION_CHECKS.items():
            if option in options:
                fields[option] = check(name, options[option])
        if "retries" in options:
            fields["max_attempts"] = checks.check_retries(name, options["retries"]) + 1
        delay = options.get("delay")
        if delay is not None:
            at = self.clock.now() + checks.check_delay(name, delay)
            fields["run_at"] = checks.check_run_at(name, at)
        return fields

    def _new_job(
        self,
        fields: dict[str, Any],
        args: Sequence[Any],
        kwargs: Mapping[str, Any] | None,
        job_id: str | None = None,
    ) -> NewJob:
        args_list, kwargs_dict = payload.check_args(args, kwargs if kwargs is not None else {})
        limit = self.max_payload_bytes
        return NewJob(
            args_json=payload.encode("args", args_list, limit, str_keys=True),
            kwargs_json=payload.encode("kwargs", kwargs_dict, limit, str_keys=True),
            id=job_id or new_job_id(),
            **fields,
        )

    def enqueue(
        self,
        task_name: str,
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        **options: Unpack[EnqueueOptions],
    ) -> JobHandle:
        """Enqueue a job of a task by name. The task need not be registered here (a producer
        may not import the worker's code); options then default to queue ``default``."""
        fields = self._job_fields(task_name, options)
        [handle] = self._enqueue([self._new_job(fields, args, kwargs)])
        return handle

    async def enqueue_async(
        self,
        task_name: str,
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        **options: Unpack[EnqueueOptions],
    ) -> JobHandle:
        import asyncio  # only here: importing faena does not load asyncio (~50 ms)

        return await asyncio.to_thread(lambda: self.enqueue(task_name, args, kwargs, **options))

    def enqueue_many(
        self,
        task_name: str,
        calls: Sequence[tuple[Sequence[Any], Mapping[str, Any]]],
        **options: Unpack[EnqueueOptions],
    ) -> list[JobHandle]:
        """Enqueue many jobs of one task in one atomic broker call."""
        fields = self._job_fields(task_name, options)
        ids = new_job_ids(len(calls))
        return self._enqueue(
            [self._new_job(fields, a, k, job_id) for (a, k), job_id in zip(calls, ids, strict=True)]
        )

    def _enqueue(self, new_jobs: list[NewJob]) -> list[JobHandle]:
        jobs = self.broker.enqueue(new_jobs)
        if not self.events.wants(JOB_ENQUEUED):
            return [JobHandle(self, job) for job in jobs]
        now = self.clock.now()
        for job in jobs:
            self.events.publish(
                Event(
                    JOB_ENQUEUED,
                    now,
                    {
                        "job_id": job.id,
                        "task": job.task,
                        "queue": job.queue,
                        "pool": job.pool,
                        "status": job.state.value,
                    },
                )
            )
        return [JobHandle(self, job) for job in jobs]

    # operators ---------------------------------------------------------------------
    def job(self, job_id: str) -> JobHandle:
        found = self.broker.get(job_id)
        if found is None:
            from faena.brokers.refusals import no_such_job
            from faena.errors import JobNotFoundError

            raise JobNotFoundError(no_such_job(job_id))
        return JobHandle(self, found)

    def jobs(self, state: JobState | str | None = None, **filters: Any) -> list[JobHandle]:
        st = JobState(state) if state is not None else None
        return [JobHandle(self, j) for j in self.broker.list_jobs(state=st, **filters)]

    def retry(self, job_id: str) -> JobHandle:
        return JobHandle(self, self.broker.retry(job_id))

    def cancel(self, job_id: str) -> JobHandle:
        return JobHandle(self, self.broker.cancel(job_id))
