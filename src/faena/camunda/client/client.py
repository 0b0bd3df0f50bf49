"""``ExternalTaskClient``: work the topics of a Camunda 7 engine (or of ``faena server``).

::

    client = ExternalTaskClient(base_url="http://camunda:8080")
    client.subscribe("process-order", handle_task)

Threads: a poller long-polls ``fetchAndLock`` for as many tasks as there are free slots; each
task runs its handler in its own thread; a heartbeat extends the lock of running tasks every
lock/3; a supervisor (the one non-daemon thread, which keeps a script like the one above
alive) waits for a stop. On SIGTERM/SIGINT the client stops fetching, gives running handlers
``grace`` seconds, then unlocks what is left so another worker gets it at once.

A handler's return value (a dict, or None) becomes the output variables of ``complete``; an
exception becomes ``failure`` with faena's retry policy (retries and exponential backoff with
full jitter, sent as Camunda's ``retries``/``retryTimeout``); :class:`BpmnError` becomes
``bpmnError``.
"""

from __future__ import annotations

import logging
import os
import random
import signal
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import httpx

from faena.camunda.client.engine import EngineClient, EngineError, engine_root
from faena.camunda.client.subscription import (
    Handler,
    Running,
    Subscription,
    attempt,
    failure,
    subscription,
    to_ms,
)
from faena.camunda.client.task import BpmnError, ExternalTask
from faena.camunda.variables import to_typed_map
from faena.core import events as ev
from faena.core.backoff import Backoff
from faena.core.clock import SYSTEM_CLOCK, Clock
from faena.core.logsink import LogSink
from faena.defaults import default_log_sink
from faena.errors import ConfigError
from faena.shutdown import STOP_SIGNALS, on_stop_signals

DEFAULT_MAX_TASKS = 10
DEFAULT_LOCK_SECONDS = 30.0
DEFAULT_ASYNC_RESPONSE_TIMEOUT = 20.0
DEFAULT_GRACE_SECONDS = 25.0
#: a subscription added this recently makes polls short, so it is picked up quickly
SETTLE_SECONDS = 2.0
REPORT_ATTEMPTS = 3
#: between failed polls, and between tries of a report: capped, jittered (core/backoff.py)
POLL_BACKOFF = Backoff(base=0.5, cap=60.0)
REPORT_BACKOFF = Backoff(base=0.5, cap=2.0)
#: at shutdown, how long the poller gets to hand back a task its last poll caught
POLL_SETTLE_SECONDS = 1.0
_log = logging.getLogger("faena.camunda")


def _default_worker_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


class ExternalTaskClient:
    """Subscribe handlers to topics; see the module docstring. Times are in seconds.

    ``log_sink``: where the events' lines go (default: :func:`faena.defaults.default_log_sink`,
    faena's structured lines, sent to stdout on start if the program set up no logging;
    :data:`faena.core.logsink.NO_LOGS`: none). ``clock`` stamps the events."""

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
        self.events = ev.EventBus()
        self.clock = clock  # stamps the events (durations are measured with time.monotonic)
        self._log = default_log_sink() if log_sink is None else log_sink
        self.subscriptions: dict[str, Subscription] = {}
        self._running: dict[str, Running] = {}
        self._lock = threading.Condition()
        self._stop = threading.Event()
        self._stopped = threading.Event()
        self._started = False
        self._poller: threading.Thread | None = None
        self._settle_until = 0.0
        self._rng = random.Random()
        self._log.attach(self.events)

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
            self.subscriptions[topic] = sub
            self._settle_until = time.monotonic() + SETTLE_SECONDS
        if self.auto_start:
            self.start()
        return self

    def start(self) -> None:
        """Start polling in background threads (idempotent)."""
        with self._lock:
            if self._started:
                return
            self._started = True
        self._log.configure_default()  # lines to stdout, unless the program set up logging
        if self.install_signals and threading.current_thread() is threading.main_thread():
            free = [  # the program's own handlers stay
                signum
                for signum in STOP_SIGNALS
                if signal.getsignal(signum) in (signal.SIG_DFL, signal.default_int_handler)
            ]
            if free:
                on_stop_signals(self._on_signal, free)
        self._emit(
            ev.WORKER_STARTED,
            status="started",
            queues=sorted(self.subscriptions),
            concurrency=self.max_tasks,
            broker=self.base_url,
        )
        self._poller = threading.Thread(target=self._poll_loop, name="camunda-poller", daemon=True)
        self._poller.start()
        threading.Thread(target=self._heartbeat_loop, name="camunda-heartbeat", daemon=True).start()
        threading.Thread(target=self._supervise, name="camunda-supervisor", daemon=False).start()

    def stop(self) -> None:
        """Stop fetching; running handlers get ``grace`` seconds, then their tasks are
        unlocked. Returns at once; :meth:`wait` blocks until done."""
        self._stop.set()
        with self._lock:
            self._lock.notify_all()

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

    # events ------------------------------------------------------------------------------
    def _emit(self, name: str, on: Running | None = None, **fields: Any) -> None:
        data: dict[str, Any] = {"worker": self.worker_id}
        if on is not None:
            task = on.task
            data.update(
                job_id=task.id,
                task=on.sub.task_name,
                queue=task.topic_name,
                attempt=attempt(on),
                process_instance_id=task.process_instance_id,
                business_key=task.business_key,
            )
        data.update(fields)
        self.events.publish(ev.Event(name, self.clock.now(), data))

    # polling -----------------------------------------------------------------------------
    def _free(self) -> int:
        with self._lock:
            while len(self._running) >= self.max_tasks and not self._stop.is_set():
                self._lock.wait(1.0)
            return self.max_tasks - len(self._running)

    def _fetch_body(self, free: int) -> tuple[dict[str, Any], float]:
        with self._lock:
            subs = list(self.subscriptions.values())
            settling = time.monotonic() < self._settle_until
        wait_ms = min(self.async_ms, 1000) if settling else self.async_ms
        body = {
            "workerId": self.worker_id,
            "maxTasks": free,
            "usePriority": self.use_priority,
            "asyncResponseTimeout": wait_ms,
            "topics": [s.topic_json() for s in subs],
        }
        return body, wait_ms / 1000 + 10.0

    def _poll_loop(self) -> None:
        failures = 0  # failed polls in a row
        while not self._stop.is_set():
            free = self._free()
            if self._stop.is_set():
                break
            if not self.subscriptions:
                self._stop.wait(0.2)
                continue
            body, read_timeout = self._fetch_body(free)
            try:
                fetched = self.engine.fetch_and_lock(body, read_timeout)
            except (httpx.HTTPError, EngineError) as exc:
                failures += 1
                pause = POLL_BACKOFF.delay(failures, self._rng)
                self._emit(
                    ev.WORKER_ERROR,
                    status="poll_failed",
                    error_type=type(exc).__name__,
                    error_message=str(exc),
                    retry_in_seconds=round(pause, 3),
                )
                self._stop.wait(pause)
                continue
            failures = 0
            for data in fetched:
                self._dispatch(data)

    def _dispatch(self, data: Mapping[str, Any]) -> None:
        sub = self.subscriptions.get(str(data.get("topicName")))
        task_id = str(data.get("id"))
        if sub is None or self._stop.is_set():
            self._unlock_quietly(task_id)
            return
        try:
            task = ExternalTask.from_json(data)
        except (ValueError, KeyError) as exc:
            self._emit(
                ev.WORKER_ERROR,
                status="bad_task",
                job_id=task_id,
                error_type=type(exc).__name__,
                error_message=str(exc),
            )
            self._unlock_quietly(task_id)
            return
        running = Running(task, sub, time.monotonic())
        with self._lock:
            self._running[task.id] = running
        self._emit(ev.JOB_CLAIMED, running, status="running")
        threading.Thread(
            target=self._execute, args=(running,), name=f"camunda-task-{task.id[:8]}", daemon=True
        ).start()

    def _unlock_quietly(self, task_id: str) -> None:
        try:
            self.engine.unlock(task_id)
        except (httpx.HTTPError, EngineError) as exc:
            _log.warning(
                "could not unlock task %s: %s",
                task_id,
                exc,
                extra={"event": "camunda.unlock_failed", "job_id": task_id},
            )

    # running one task ------------------------------------------------------------------------
    def _execute(self, running: Running) -> None:
        sub, task = running.sub, running.task
        try:
            output = sub.handler(task)
            outcome: Callable[[], None] = self._completer(running, output)
        except BpmnError as err:
            outcome = self._bpmn_reporter(running, err)
        except Exception as exc:
            outcome = self._failure_reporter(running, exc)
        try:
            if not (running.lost or running.released):
                self._report(running, outcome)
            elif running.lost:
                self._emit(
                    ev.JOB_LEASE_LOST,
                    running,
                    status="lease_lost",
                    duration_ms=self._ms_since(running),
                )
        finally:
            with self._lock:
                self._running.pop(task.id, None)
                self._lock.notify_all()

    @staticmethod
    def _ms_since(running: Running) -> float:
        return round((time.monotonic() - running.started) * 1000, 3)

    def _completer(self, running: Running, output: Any) -> Callable[[], None]:
        if output is not None and not isinstance(output, Mapping):
            raise TypeError(
                f"handler {running.sub.task_name} returned {type(output).__name__}; return a dict "
                f"of output variables or None"
            )
        variables = to_typed_map(output or {})

        def send() -> None:
            self.engine.complete(running.task.id, self.worker_id, variables)
            self._emit(
                ev.JOB_SUCCEEDED, running, status="succeeded", duration_ms=self._ms_since(running)
            )

        return send

    def _bpmn_reporter(self, running: Running, err: BpmnError) -> Callable[[], None]:
        variables = to_typed_map(err.variables)

        def send() -> None:
            self.engine.bpmn_error(
                running.task.id, self.worker_id, err.error_code, err.error_message, variables
            )
            self._emit(
                "job.bpmn_error",
                running,
                status="bpmn_error",
                error_type="BpmnError",
                error_code=err.error_code,
                error_message=err.error_message,
                duration_ms=self._ms_since(running),
            )

        return send

    def _failure_reporter(self, running: Running, exc: Exception) -> Callable[[], None]:
        f = failure(running, exc, self._rng)

        def send() -> None:
            self.engine.failure(
                running.task.id,
                self.worker_id,
                f.message,
                f.details,
                f.retries_left,
                int(f.delay * 1000),
            )
            fields: dict[str, Any] = dict(
                status="failed",
                duration_ms=self._ms_since(running),
                error_type=type(exc).__name__,
                error_message=str(exc),
            )
            self._emit(
                ev.JOB_FAILED,
                running,
                will_retry=f.retries_left > 0,
                traceback=f.details,
                retry_in_seconds=round(f.delay, 3),
                retry_count=f.attempts_made - 1,
                **fields,
            )
            if f.retries_left == 0:
                fields["status"] = "dead"
                self._emit(ev.JOB_DEAD, running, retry_count=f.attempts_made - 1, **fields)

        return send

    def _report(self, running: Running, send: Callable[[], None]) -> None:
        """Send the outcome; 400/404 mean the lock is lost (dropped, logged); optimistic
        locking and 5xx are retried a few times, then the lock is left to expire."""
        for n in range(1, REPORT_ATTEMPTS + 1):
            try:
                send()
                return
            except EngineError as exc:
                if exc.lock_lost:
                    self._emit(
                        ev.JOB_LEASE_LOST,
                        running,
                        status="lease_lost",
                        error_message=exc.message,
                        http_status=exc.status,
                    )
                    return
                error: Exception = exc
            except httpx.HTTPError as exc:
                error = exc
            if n < REPORT_ATTEMPTS:
                self._stopped.wait(REPORT_BACKOFF.delay(n, self._rng))
        self._emit(
            ev.WORKER_ERROR,
            running,
            status="report_failed",
            error_type=type(error).__name__,
            error_message=str(error),
        )

    # heartbeat and shutdown --------------------------------------------------------------------
    def _heartbeat_loop(self) -> None:
        while not self._stopped.is_set():
            with self._lock:
                interval = min([s.lock_ms for s in self.subscriptions.values()] or [self.lock_ms])
            if self._stopped.wait(interval / 3000):
                return
            with self._lock:
                running = [r for r in self._running.values() if not (r.lost or r.released)]
            for r in running:
                if r.task.id not in self._running:
                    continue
                try:
                    self.engine.extend_lock(r.task.id, self.worker_id, r.sub.lock_ms)
                except EngineError as exc:
                    if exc.lock_lost:
                        r.lost = True
                        self._emit(
                            ev.JOB_LEASE_LOST,
                            r,
                            status="lease_lost",
                            error_message=exc.message,
                            http_status=exc.status,
                        )
                except httpx.HTTPError:
                    pass  # the next beat tries again; the lock has two more thirds to go

    def _supervise(self) -> None:
        self._stop.wait()
        with self._lock:
            count = len(self._running)
        self._emit(ev.WORKER_STOPPING, status="draining", running=count, grace_seconds=self.grace)
        began = time.monotonic()
        with self._lock:  # (the grace may be cut to 0 meanwhile, by a second signal)
            while self._running and time.monotonic() < began + self.grace:
                self._lock.wait(min(began + self.grace - time.monotonic(), 0.5))
            left = list(self._running.values())
            for r in left:
                r.released = True
        for r in left:
            try:
                self.engine.unlock(r.task.id)
                self._emit(ev.JOB_RELEASED, r, status="released")
            except (httpx.HTTPError, EngineError) as exc:
                self._emit(ev.WORKER_ERROR, r, status="unlock_failed", error_message=str(exc))
        if left and self._poller is not None:
            # a long poll still open may have just been handed a task unlocked above: the
            # poller unlocks what it gets now (the engine answers such a poll at once)
            self._poller.join(POLL_SETTLE_SECONDS)
        self._emit(ev.WORKER_STOPPED, status="stopped")
        self._stopped.set()


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
