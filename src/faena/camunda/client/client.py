"""``ExternalTaskClient``: work the topics of a Camunda 7 engine (or of ``faena server``).

::

    client = ExternalTaskClient(base_url="http://camunda:8080")
    client.subscribe("process-order", handle_task)

The client runs on faena's one worker runtime (:class:`faena.worker.runtime.Worker`), with the
engine as its job source (:class:`~faena.camunda.client.source.CamundaSource`): the runtime's
slots (``max_tasks`` handler threads), its heartbeat (``extendLock`` every lock/3), its back-off
while the engine cannot be reached, its failure rule and its drain are the ones every faena
worker has. Each claim long-polls ``fetchAndLock`` for as many tasks as there are free slots.
The worker runs in one non-daemon thread, which keeps a script like the one above alive. On
SIGTERM/SIGINT the client stops fetching (a long poll already open is answered first, within
``async_response_timeout``), gives running handlers ``grace`` seconds, then unlocks what is left
so another worker gets it at once; a second signal unlocks at once.

A handler's return value (a dict, or None) becomes the output variables of ``complete``; an
exception becomes ``failure`` with faena's retry policy (retries and exponential backoff with
full jitter, sent as Camunda's ``retries``/``retryTimeout``); :class:`BpmnError` becomes
``bpmnError``.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import socket
import threading
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from faena.app import App
from faena.camunda.client.engine import EngineClient, engine_root
from faena.camunda.client.jobs import task_function
from faena.camunda.client.source import CamundaSource
from faena.camunda.client.subscription import Handler, Subscription, subscription, to_ms
from faena.core import events as ev
from faena.core.clock import SYSTEM_CLOCK, Clock
from faena.core.job import Job
from faena.core.lease import check_lease
from faena.core.logsink import LogSink
from faena.defaults import default_log_sink
from faena.errors import ConfigError
from faena.shutdown import STOP_SIGNALS, on_stop_signals
from faena.worker.runtime import Worker

DEFAULT_MAX_TASKS = 10
DEFAULT_LOCK_SECONDS = 30.0
DEFAULT_ASYNC_RESPONSE_TIMEOUT = 20.0
DEFAULT_GRACE_SECONDS = 25.0
#: a subscription added this recently makes polls short, so it is picked up quickly
SETTLE_SECONDS = 2.0
#: once stopping, a poll waits at most this long (milliseconds)
STOPPING_POLL_MS = 100


def _default_worker_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


class ExternalTaskClient:
    """Subscribe handlers to topics; see the module docstring. Times are in seconds.

    ``log_sink``: where the events' lines go (default: :func:`faena.defaults.default_log_sink`,
    faena's structured lines, sent to stdout on start if the program set up no logging;
    :data:`faena.core.logsink.NO_LOGS`: none). ``clock`` stamps the events and dates the
    ``retryTimeout`` of a failure."""

    def __init__(
        self,
        base_url: str,
        *,
        worker_id: str | None = None,
        max_tasks: int = DEFAULT_MAX_TASKS,
        lock_duration: float = DEFAULT_LOCK_SECONDS,
        async_response_timeout: float = DEFAULT_ASYNC_RESPONSE_TIMEOUT,
        auth: Any = None,
        engine: str = "default",
        grace: float = DEFAULT_GRACE_SECONDS,
        use_priority: bool = True,
        auto_start: bool = True,
        install_signals: bool = True,
        http_timeout: float = 30.0,
        log_sink: LogSink | None = None,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        if max_tasks < 1:
            raise ConfigError(f"max_tasks must be >= 1, got {max_tasks}")
        if not 0 < async_response_timeout <= 1800:
            raise ConfigError(
                f"async_response_timeout must be in (0, 1800] seconds (Camunda's cap), got "
                f"{async_response_timeout}"
            )
        self.base_url = engine_root(base_url, engine)
        self.worker_id = worker_id or _default_worker_id()
        self.max_tasks = max_tasks
        self.lock_ms = to_ms(lock_duration, "lock_duration")
        self.async_ms = int(async_response_timeout * 1000)
        self.grace = grace
        self.use_priority = use_priority
        self.auto_start = auto_start
        self.install_signals = install_signals
        self.engine = EngineClient(self.base_url, auth=auth, timeout=http_timeout)
        self.clock = clock
        self._log = default_log_sink() if log_sink is None else log_sink
        #: the runtime's application: one task per subscription, no broker of its own
        self._app = App(lease_seconds=lock_duration, clock=clock, log_sink=self._log)
        self.events = self._app.events
        self.subscriptions: dict[str, Subscription] = {}
        self._topics: list[str] = []  # the worker's queues, shared: topics added later count
        self._source = CamundaSource(
            self.engine,
            self.subscriptions,
            poll_ms=self._poll_ms,
            use_priority=use_priority,
            clock=clock,
            on_bad_task=self._bad_task,
            on_bpmn_error=self._bpmn_error,
        )
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._stopped = threading.Event()
        self._started = False
        self._worker: Worker | None = None
        self._settle_until = 0.0

    # public API --------------------------------------------------------------------------
    def subscribe(
        self,
        topic: str,
        handler: Handler,
        *,
        lock_duration: float | None = None,
        variables: Sequence[str] | None = None,
        retries: int = 3,
        backoff_base: float = 1.0,
        backoff_cap: float = 300.0,
        retry_on: Iterable[type[BaseException]] | None = None,
        business_key: str | None = None,
        process_definition_key: str | None = None,
        process_variables: Mapping[str, Any] | None = None,
    ) -> ExternalTaskClient:
        """Handle ``topic`` with ``handler(task) -> dict | None``; starts the client unless it
        was built with ``auto_start=False``. ``retries``: failures retried after the first
        (only when the engine has not set a count yet); ``retry_on``: exception types worth a
        retry (default: all); others go straight to an incident (retries 0)."""
        if topic in self.subscriptions:
            raise ConfigError(f"topic {topic!r} already has a handler")
        sub = subscription(
            topic,
            handler,
            lock_ms=to_ms(lock_duration, "lock_duration") if lock_duration else self.lock_ms,
            variables=variables,
            retries=retries,
            backoff_base=backoff_base,
            backoff_cap=backoff_cap,
            retry_on=retry_on,
            business_key=business_key,
            process_definition_key=process_definition_key,
            process_variables=process_variables,
        )
        with self._lock:
            if self._started and sub.lock_ms / 1000 < self._app.lease_seconds:
                raise ConfigError(
                    f"topic {topic!r}: lock_duration {sub.lock_ms / 1000} s is shorter than the "
                    f"{self._app.lease_seconds} s the running client renews locks for (every "
                    f"third of it); subscribe it before the client starts, or give the client "
                    f"lock_duration={sub.lock_ms / 1000}"
                )
            if sub.task_name in self._app.tasks:  # one handler for several topics
                sub = dataclasses.replace(sub, task_name=f"{sub.task_name}[{topic}]")
            self._app.task(
                name=sub.task_name,
                queue=topic,
                retries=sub.retry.retries,
                backoff_base=sub.retry.backoff_base,
                backoff_cap=sub.retry.backoff_cap,
                retry_on=sub.retry_on,
                isolation="thread",
            )(task_function(sub, self._source.bpmn_errors))
            self.subscriptions[topic] = sub
            self._topics.append(topic)
            self._settle_until = time.monotonic() + SETTLE_SECONDS
        if self.auto_start:
            self.start()
        return self

    def start(self) -> None:
        """Start working in a background thread (idempotent)."""
        with self._lock:
            if self._started:
                return
            self._started = True
            locks = [s.lock_ms for s in self.subscriptions.values()] or [self.lock_ms]
            self._app.lease_seconds = check_lease(min(locks) / 1000)
        self._log.configure_default()  # lines to stdout, unless the program set up logging
        if self.install_signals and threading.current_thread() is threading.main_thread():
            free = [  # the program's own handlers stay
                signum
                for signum in STOP_SIGNALS
                if signal.getsignal(signum) in (signal.SIG_DFL, signal.default_int_handler)
            ]
            if free:
                on_stop_signals(self._on_signal, free)
        worker = Worker(
            self._app,
            queues=self._topics,
            concurrency=self.max_tasks,
            isolation="thread",
            grace=self.grace,
            name=self.worker_id,
            install_signals=False,
            log_sink=self._log,
            source=self._source,
        )
        self._worker = worker
        if self._stop.is_set():  # stopped before it started
            worker.stop()
        threading.Thread(target=self._work, args=(worker,), name="camunda-worker").start()

    def stop(self) -> None:
        """Stop fetching; running handlers get ``grace`` seconds, then their tasks are
        unlocked; a second stop (or signal) unlocks at once. Returns at once; :meth:`wait`
        blocks until done."""
        self._stop.set()
        if self._worker is not None:
            self._worker.stop()

    def wait(self, timeout: float | None = None) -> bool:
        return self._stopped.wait(timeout)

    def run(self) -> int:
        """Start (if needed) and block until stopped (SIGTERM/SIGINT or :meth:`stop`)."""
        self.start()
        while not self._stopped.wait(0.5):
            pass
        return 0

    def _on_signal(self, count: int) -> None:
        """The ``count``-th SIGTERM/SIGINT (on the thread of :func:`on_stop_signals`)."""
        if self._stop.is_set():
            self.grace = 0.0  # a second signal (or one after stop()): stop now
        self.stop()

    def _work(self, worker: Worker) -> None:
        try:
            worker.run()
        finally:
            self._stopped.set()

    # the source's hooks ------------------------------------------------------------------
    def _poll_ms(self) -> int:
        """The ``asyncResponseTimeout`` of the next claim: short while a new subscription
        settles or the client stops."""
        if self._stop.is_set():
            return min(self.async_ms, STOPPING_POLL_MS)
        if time.monotonic() < self._settle_until:
            return min(self.async_ms, 1000)
        return self.async_ms

    def _emit(self, name: str, job: Job | None = None, **fields: Any) -> None:
        data: dict[str, Any] = {"worker": self.worker_id}
        if job is not None:
            data.update(job_id=job.id, task=job.task, queue=job.queue, attempt=job.attempt)
        data.update(fields)
        self.events.publish(ev.Event(name, self.clock.now(), data))

    def _bad_task(self, task_id: str, exc: Exception) -> None:
        self._emit(
            ev.WORKER_ERROR,
            status="bad_task",
            job_id=task_id,
            error_type=type(exc).__name__,
            error_message=str(exc),
        )

    def _bpmn_error(self, job: Job, bpmn: dict[str, Any]) -> None:
        self._emit(
            "job.bpmn_error",
            job,
            status="bpmn_error",
            error_type="BpmnError",
            error_code=bpmn.get("code"),
            error_message=bpmn.get("message"),
        )


def run_subscriptions(
    client: ExternalTaskClient | str,
    subscriptions: Mapping[str, Handler] | None = None,
    **options: Any,
) -> int:
    """Run Camunda subscriptions in the foreground until SIGTERM/SIGINT; returns the exit
    code (0). ``client`` is a configured :class:`ExternalTaskClient`, or a base URL with
    ``options`` for one; ``subscriptions`` maps more topics to handlers."""
    if isinstance(client, str):
        client = ExternalTaskClient(client, auto_start=False, **options)
    elif options:
        raise ConfigError("options apply only when run_subscriptions builds the client from a URL")
    for topic, handler in (subscriptions or {}).items():
        client.subscribe(topic, handler)
    if not client.subscriptions:
        raise ConfigError("no subscriptions: call client.subscribe(topic, handler) first")
    return client.run()
