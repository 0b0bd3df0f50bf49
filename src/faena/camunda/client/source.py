"""A Camunda 7 engine as a :class:`~faena.brokers.protocol.WorkerSource`: the adapter that lets
faena's worker runtime work external tasks.

========================  ==========================================================
worker runtime            Camunda REST
========================  ==========================================================
``claim``                 ``fetchAndLock`` (a long poll: the claim itself waits)
``heartbeat``             ``extendLock`` of each lease; 400/404 = the lease is lost
``finish`` succeeded      ``complete`` with the handler's output variables
``finish`` failed / dead  ``failure`` with ``retries`` left and ``retryTimeout``
``finish`` BPMN error     ``bpmnError`` (the handler raised :class:`BpmnError`)
``release``, cancelled    ``unlock`` (only while the lock is this worker's, as far as it
                          knows: ``unlock`` names no worker)
``reap``                  nothing: the engine expires its own locks
``waker``                 readable after every claim: the next claim waits in the engine
========================  ==========================================================

A fetched task becomes a :class:`~faena.core.job.Job` whose one argument is the task's JSON,
whose ``task`` is the subscription's handler name and whose ``tries``/``max_attempts`` are
read from the retries the engine has left (:func:`~faena.camunda.client.jobs.job_of`), so the
runtime's failure rule (:func:`faena.core.outcomes.decide`) gives Camunda's: one retry fewer
than the engine had, or the subscription's count the first time, after the subscription's
back-off.

A call that fails in transit or with a 5xx/optimistic-locking answer raises
:class:`~faena.errors.BrokerError`: the runtime backs off and sends the outcomes again; the
outcomes the engine took already are remembered and not sent twice.
"""

from __future__ import annotations

import contextlib
import functools
import json
import socket
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

import httpx

from faena.brokers.protocol import ClaimResult, HeartbeatResult, Reaped
from faena.camunda.client.engine import EngineError
from faena.camunda.client.jobs import VARIABLES_KEY, failure_message, job_of
from faena.camunda.client.subscription import Subscription
from faena.camunda.client.task import ExternalTask
from faena.core.clock import SYSTEM_CLOCK, Clock
from faena.core.job import Job, Lease, Outcome
from faena.core.states import JobState
from faena.errors import BrokerError

#: seconds a long poll may take beyond its ``asyncResponseTimeout`` before it counts as failed
POLL_SLACK_SECONDS = 10.0


class Engine(Protocol):
    """The calls of :class:`~faena.camunda.client.engine.EngineClient` the adapter makes."""

    def fetch_and_lock(
        self, body: Mapping[str, Any], read_timeout: float
    ) -> list[dict[str, Any]]: ...

    def complete(self, task_id: str, worker: str, variables: Mapping[str, Any]) -> None: ...

    def failure(
        self,
        task_id: str,
        worker: str,
        message: str,
        details: str,
        retries: int,
        retry_timeout_ms: int,
    ) -> None: ...

    def bpmn_error(
        self,
        task_id: str,
        worker: str,
        code: str,
        message: str | None,
        variables: Mapping[str, Any],
    ) -> None: ...

    def extend_lock(self, task_id: str, worker: str, duration_ms: int) -> None: ...

    def unlock(self, task_id: str) -> None: ...


class PollWaker:
    """Readable after every claim: the worker claims again whenever a slot is free, and that
    claim waits in the engine (a long poll) instead of the worker waiting here."""

    def __init__(self) -> None:
        self._r, self._w = socket.socketpair()
        self._r.setblocking(False)
        self._w.setblocking(False)

    def fileno(self) -> int:
        return self._r.fileno()

    def ready(self) -> None:
        with contextlib.suppress(OSError):
            self._w.send(b"\x01")

    def drain(self) -> None:
        with contextlib.suppress(OSError):
            while self._r.recv(4096):
                pass

    def close(self) -> None:
        self._r.close()
        self._w.close()


class CamundaSource:
    """The worker-facing half of the broker contract, over one engine's REST API.

    ``subscriptions`` is read at every claim (the client may add topics while it runs);
    ``poll_ms()`` is the ``asyncResponseTimeout`` of the next claim; ``on_bad_task(id, exc)``
    hears of a fetched task that could not be read (it is unlocked), ``on_bpmn_error(job,
    bpmn)`` of a ``bpmnError`` the engine took. :attr:`bpmn_errors` is what
    :func:`~faena.camunda.client.jobs.task_function` fills."""

    kind = "camunda"
    #: the slots report and claim on their own threads: a long poll never holds up a report
    parallel_calls = True

    def __init__(
        self,
        engine: Engine,
        subscriptions: Mapping[str, Subscription],
        *,
        poll_ms: Callable[[], int],
        use_priority: bool = True,
        clock: Clock = SYSTEM_CLOCK,
        on_bad_task: Callable[[str, Exception], None] = lambda task_id, exc: None,
        on_bpmn_error: Callable[[Job, dict[str, Any]], None] = lambda job, bpmn: None,
    ) -> None:
        self._engine = engine
        self._subscriptions = subscriptions
        self._poll_ms = poll_ms
        self._use_priority = use_priority
        self._clock = clock
        self._on_bad_task = on_bad_task
        self._on_bpmn_error = on_bpmn_error
        #: the BPMN errors handlers raised, by task id, until their outcome is sent
        self.bpmn_errors: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()
        self._held: dict[Lease, Job] = {}  # leases granted and not finished or released
        #: when each held lock runs out as far as this side knows (the source's clock): an
        #: ``unlock`` names no worker, so a lock that may be another worker's by now is never
        #: unlocked from here
        self._until: dict[Lease, float] = {}
        self._wakers: list[PollWaker] = []

    # claiming ----------------------------------------------------------------------------
    def claim(
        self, worker: str, queues: Sequence[str], limit: int, lease_seconds: float
    ) -> ClaimResult:
        """``fetchAndLock`` for up to ``limit`` tasks of the subscribed topics among
        ``queues`` (each locked for its subscription's ``lock_duration``), long-polling."""
        return self._claim(worker, queues, limit, long_poll=True)

    def _claim(
        self, worker: str, queues: Sequence[str], limit: int, long_poll: bool
    ) -> ClaimResult:
        subs = [s for s in list(self._subscriptions.values()) if s.topic in queues or not queues]
        if limit <= 0 or not subs:
            return ClaimResult()
        wait_ms = self._poll_ms() if long_poll else 0
        body: dict[str, Any] = {
            "workerId": worker,
            "maxTasks": limit,
            "usePriority": self._use_priority,
            "topics": [s.topic_json() for s in subs],
        }
        if wait_ms:
            body["asyncResponseTimeout"] = wait_ms
        fetch = functools.partial(
            self._engine.fetch_and_lock, body, wait_ms / 1000 + POLL_SLACK_SECONDS
        )
        try:
            fetched: list[dict[str, Any]] = self._call(fetch)
        except _LockLost as exc:  # a 400 to a fetch: the request itself is wrong
            raise BrokerError(f"the Camunda engine refused fetchAndLock: {exc}") from exc
        finally:
            for waker in list(self._wakers):
                waker.ready()  # claim again once a slot is free: that claim waits itself
        now = self._clock.now()
        jobs = []
        for data in fetched:
            job = self._job(data, now)
            if job is not None:
                jobs.append(job)
        return ClaimResult(jobs=jobs)

    def _job(self, data: Mapping[str, Any], now: float) -> Job | None:
        task_id = str(data.get("id"))
        sub = self._subscriptions.get(str(data.get("topicName")))
        try:
            if sub is None:
                raise ValueError(
                    f"task {task_id} is of topic {data.get('topicName')!r}, "
                    f"which this client does not subscribe to"
                )
            ExternalTask.from_json(data)  # a task its handler could not read: given back
            job = job_of(data, sub, now)
        except (ValueError, KeyError, TypeError) as exc:
            self._on_bad_task(task_id, exc)
            self._unlock_quietly(task_id)
            return None
        with self._lock:
            lease = Lease(job.id, job.attempt)
            self._held[lease] = job
            self._until[lease] = now + sub.lock_ms / 1000
        return job

    def finish_and_claim(
        self,
        outcomes: Sequence[Outcome],
        worker: str,
        queues: Sequence[str],
        limit: int,
        lease_seconds: float,
    ) -> tuple[list[bool], ClaimResult]:
        """``finish``, then a claim that long-polls only when nothing was reported: a slot
        whose task ended reports it and takes what is there at once, on its own thread,
        while the one long poll waits on the worker's main thread (the waker sends it back
        there once this claim is answered)."""
        if not outcomes:
            return [], self.claim(worker, queues, limit, lease_seconds)
        accepted = self.finish(outcomes)
        return accepted, self._claim(worker, queues, limit, long_poll=False)

    # keeping -----------------------------------------------------------------------------
    def heartbeat(
        self, worker: str, leases: Sequence[Lease], lease_seconds: float
    ) -> HeartbeatResult:
        """``extendLock`` of each lease by its subscription's lock duration; a 400/404 means
        another worker has the task now, or it is gone: lost. Raises only if every call
        failed in transit (the runtime counts an outage)."""
        lost: set[str] = set()
        failed: list[BaseException] = []
        for lease in leases:
            job = self._job_held(lease)
            if job is None:
                lost.add(lease.job_id)
                continue
            sub = self._subscriptions.get(job.queue)
            lock_ms = sub.lock_ms if sub is not None else int(lease_seconds * 1000)
            sent = self._clock.now()
            try:
                self._engine.extend_lock(job.id, worker, lock_ms)
            except EngineError as exc:
                if exc.lock_lost:
                    lost.add(job.id)
                    self._forget(lease)  # another worker's now, or gone: never sent again
                else:
                    failed.append(exc)
            except httpx.HTTPError as exc:
                failed.append(exc)
            else:
                with self._lock:
                    if lease in self._until:
                        self._until[lease] = sent + lock_ms / 1000
        if failed and len(failed) == len(leases):
            raise BrokerError(f"extendLock failed for all {len(leases)} tasks: {failed[0]}")
        return HeartbeatResult(lost=frozenset(lost))

    # finishing ---------------------------------------------------------------------------
    def finish(self, outcomes: Sequence[Outcome]) -> list[bool]:
        """Each outcome as its Camunda call; ``False`` when the engine says the lock is lost
        (or the lease is not this source's). A transient failure raises
        :class:`~faena.errors.BrokerError` after the outcomes before it were sent: those are
        not sent again when the runtime retries."""
        return [self._finish_one(outcome) for outcome in outcomes]

    def _finish_one(self, outcome: Outcome) -> bool:
        job = self._job_held(outcome.lease)
        if job is None:
            return False
        worker = job.worker or ""
        state = outcome.state
        send: Callable[[], object]
        bpmn = self.bpmn_errors.get(job.id)
        if bpmn is not None and state is JobState.DEAD:
            send = self._bpmn_error(job, worker, bpmn)
        elif state is JobState.SUCCEEDED:
            result = json.loads(outcome.result_json or "null")
            result = result if isinstance(result, dict) else {}
            variables = result.get(VARIABLES_KEY) or {}
            send = functools.partial(self._engine.complete, job.id, worker, variables)
        elif state in (JobState.FAILED, JobState.DEAD):
            send = self._failure(job, worker, outcome)
        elif self._lock_held(outcome.lease):  # cancelled (no such end in Camunda): given back
            send = functools.partial(self._engine.unlock, job.id)
        else:  # its lock may be another worker's by now: left alone
            self._forget(outcome.lease)
            return False
        try:
            self._call(send)
        except _LockLost:
            ok = False
        else:
            ok = True
        self._forget(outcome.lease)
        if ok and bpmn is not None and state is JobState.DEAD:
            self._on_bpmn_error(job, bpmn)
        return ok

    def _bpmn_error(self, job: Job, worker: str, bpmn: dict[str, Any]) -> Callable[[], None]:
        code = str(bpmn.get("code"))
        message = bpmn.get("message")
        variables = bpmn.get(VARIABLES_KEY) or {}
        return lambda: self._engine.bpmn_error(
            job.id, worker, code, None if message is None else str(message), variables
        )

    def _failure(self, job: Job, worker: str, outcome: Outcome) -> Callable[[], None]:
        retrying = outcome.state is JobState.FAILED
        left = max(job.max_attempts - job.tries, 0) if retrying else 0
        delay = max((outcome.retry_at or 0.0) - self._clock.now(), 0.0) if retrying else 0.0
        error = outcome.error
        details = error.traceback if error is not None else ""
        return lambda: self._engine.failure(
            job.id, worker, failure_message(error), details, left, int(delay * 1000)
        )

    def release(self, leases: Sequence[Lease]) -> list[bool]:
        """``unlock`` each task: another worker (or this one) may fetch it at once."""
        out = []
        for lease in leases:
            job = self._job_held(lease)
            if job is None or not self._lock_held(lease):
                self._forget(lease)  # its lock may be another worker's by now: left alone
                out.append(False)
                continue
            try:
                self._call(functools.partial(self._engine.unlock, job.id))
                ok = True
            except _LockLost:
                ok = False
            self._forget(lease)
            out.append(ok)
        return out

    def reap(self) -> list[Reaped]:
        return []  # the engine expires the locks of workers that died

    def waker(self, queues: Sequence[str]) -> PollWaker:
        waker = PollWaker()
        waker.ready()  # the first claim at once
        self._wakers.append(waker)
        return waker

    def next_run_at(self, queues: Sequence[str]) -> float | None:
        return None  # the engine holds back tasks with a retryTimeout itself

    # helpers -----------------------------------------------------------------------------
    def _job_held(self, lease: Lease) -> Job | None:
        with self._lock:
            return self._held.get(lease)

    def _lock_held(self, lease: Lease) -> bool:
        """Whether the engine holds the task's lock for this worker still, as far as this
        side knows: extended (or granted) less than a lock ago."""
        with self._lock:
            until = self._until.get(lease)
        return until is not None and self._clock.now() < until

    def _forget(self, lease: Lease) -> None:
        with self._lock:
            self._held.pop(lease, None)
            self._until.pop(lease, None)
        self.bpmn_errors.pop(lease.job_id, None)

    def _call(self, send: Callable[[], Any]) -> Any:
        """Run one engine call: a lost lock raises :class:`_LockLost`; a failure in transit,
        a 5xx or optimistic locking raises :class:`BrokerError` (the runtime backs off)."""
        try:
            return send()
        except EngineError as exc:
            if exc.lock_lost:
                raise _LockLost(exc.message) from exc
            raise BrokerError(f"the Camunda engine refused a call: {exc}") from exc
        except httpx.HTTPError as exc:
            raise BrokerError(
                f"the Camunda engine could not be reached ({type(exc).__name__}: {exc}); "
                f"the worker backs off and tries again"
            ) from exc

    def _unlock_quietly(self, task_id: str) -> None:
        with contextlib.suppress(EngineError, httpx.HTTPError):
            self._engine.unlock(task_id)


class _LockLost(Exception):
    """The engine answered 400/404: another worker holds the task, or it is gone."""
