"""The worker process: a dispatcher turn claims, starts and reports jobs.

A turn reports finished attempts and claims as many jobs as there are free slots, in one
broker round trip, and hands the new jobs to the executors. The main thread takes a turn, then
sleeps on the broker's waker and the executors' inbox (no polling) until a job ends, work
arrives, a timeout is due or a delayed job comes due.

On brokers whose calls run in parallel (PostgreSQL, Redis), a thread-executor slot whose job
ends takes a turn itself, on its own thread: its next job is claimed without waking the main
thread, and the slots' broker round trips overlap each other's jobs. Turns on several threads
reserve the free slots they claim for, so the worker never holds more jobs than its
concurrency. Elsewhere (SQLite's one writer, memory) the main thread takes every turn and
reports the jobs that ended meanwhile together.

With ``prefetch`` N the worker holds up to N claimed jobs beyond its slots. A slot whose job
ends starts the next of them itself, without a broker call, and the main thread takes every
turn: it reports what ended and tops the prefetch up, for several jobs in one round trip.
"""

from __future__ import annotations

import os
import random
import select
import signal
import socket
import threading
import time
import uuid
from collections import deque
from types import FrameType
from typing import Any

from faena.app import App
from faena.brokers.protocol import ClaimResult
from faena.core import events as ev
from faena.core import outcomes
from faena.core.backoff import Backoff
from faena.core.job import Job, Lease, Outcome
from faena.core.options import Isolation
from faena.core.states import JobState
from faena.errors import BrokerError, ConfigError, FaenaError
from faena.observability.logs import (
    attach_event_logging,
    batch_event_lines,
    flush_events,
    log_event,
    logs_event,
)
from faena.task import Task
from faena.worker.events import WorkerEvents
from faena.worker.executors import AsyncExecutor, Executor, ThreadExecutor
from faena.worker.heartbeat import Heartbeat
from faena.worker.leases import LeaseKeeping, LeaseWatch, Running
from faena.worker.outage import Outage
from faena.worker.processes import ProcessExecutor
from faena.worker.results import Completions, RunResult

DEFAULT_CONCURRENCY = 16
DEFAULT_GRACE_SECONDS = 25.0
IDLE_POLL_SECONDS = 5.0  # safety net only: wake-ups come from the broker's waker
SATURATED_POLL_SECONDS = 0.05
# Slots that take their own turns leave their log lines held by the log handler (one write
# per 4 KiB, not per job); while they run, the sleeping main thread writes what is held at
# least this often, so a line is never held longer.
LOG_FLUSH_SECONDS = 0.1


class Worker(LeaseKeeping):
    def __init__(
        self,
        app: App,
        *,
        queues: list[str] | None = None,
        concurrency: int = DEFAULT_CONCURRENCY,
        isolation: Isolation | str | None = None,
        grace: float = DEFAULT_GRACE_SECONDS,
        name: str | None = None,
        install_signals: bool = True,
        prefetch: int = 0,
    ) -> None:
        if concurrency < 1:
            raise ConfigError(f"concurrency must be >= 1, got {concurrency}")
        if prefetch < 0:
            raise ConfigError(
                f"prefetch must be >= 0 (jobs claimed ahead of a free slot), got {prefetch}"
            )
        self.app = app
        self.queues = queues or sorted({t.options.queue for t in app.tasks.values()} or {"default"})
        self.concurrency = concurrency
        self.prefetch = prefetch
        self.isolation = Isolation(isolation) if isolation is not None else None
        self.grace = grace
        self.name = name or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self._events = WorkerEvents(app.events, app.clock, self.name)
        self.install_signals = install_signals
        self._serving = False  # started and not draining (see ``ready``)
        self.stopped = threading.Event()
        # a plain flag, not a threading.Event: stop() runs in signal handlers, and Event.set
        # takes a lock that a second signal, arriving while the first handler holds it,
        # would wait for forever (the handlers run on the main thread, one inside the other)
        self._stop_requested = False
        self._stop_at: float | None = None
        # every job this worker holds a lease on: running, prefetched (waiting in _ready for a
        # slot) or ended and not yet reported
        self._running: dict[str, Running] = {}
        self._ready: deque[Job] = deque()
        self._active = 0  # jobs handed to an executor whose attempt has not ended
        self._lock = threading.Lock()
        self._completions = Completions()
        self._unreported: list[tuple[RunResult, Outcome]] = []
        # slots that turns in progress hold: each, the jobs it reports or the jobs it claims,
        # whichever is more (the broker swaps the ones for the others in one step)
        self._turn_slots = 0
        self._turns = 0  # turns in progress on executor threads
        self._turns_over = threading.Condition(self._lock)
        self._turns_on_slots = False  # slots take turns (and log) on their own threads
        self._want = True  # the last claim filled every free slot: more work may be waiting
        self._saturated = False  # the last claim was held back by a full pool or cap
        self._publish_claimed = True
        self._outage = Outage(self._events)
        self._backoff = Backoff()
        self._executors: dict[Isolation, Executor] = {}
        self._rng = random.Random()
        attach_event_logging(app.events)

    @property
    def ready(self) -> bool:  # started, not draining, the broker answers: /readyz
        return self._serving and not self._outage.active

    @property
    def jobs_running(self) -> int:
        """Jobs handed to an executor whose attempt has not ended (prefetched ones wait)."""
        return self._active

    # control -------------------------------------------------------------------------
    def stop(self, graceful: bool = True) -> None:
        """Stop claiming now; finish running jobs within the grace budget, then release.
        Takes no lock, so a signal handler may call it, even inside another call."""
        if self._stop_requested or not graceful:
            self.grace = 0.0
        self._stop_requested = True
        self._completions.poke()

    def _signal(self, signum: int, frame: FrameType | None) -> None:
        self.stop()

    def close(self) -> None:
        """Close the results inbox's sockets: :meth:`run` does when it returns; a worker that
        is never run is closed here. A :meth:`stop` afterwards is harmless."""
        self._completions.close()

    # main loop -----------------------------------------------------------------------
    def run(self) -> int:
        broker = self.app.broker
        if self.install_signals and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, self._signal)
            signal.signal(signal.SIGINT, self._signal)
        waker = broker.waker(self.queues)
        heartbeat = Heartbeat(
            broker,
            self.name,
            self.app.lease_seconds,
            self._leases,
            self._on_heartbeat,
            self._events.reaped,
            self._outage,
            self.app.clock,
        )
        watch = LeaseWatch(
            self.app.clock, self.app.lease_seconds, self._renewals, self._lease_ran_out
        )
        detach = self._outage.attach(broker)  # its client's retries tell of an outage
        heartbeat.start()
        watch.start()
        batch_event_lines()
        # a claim is an event per job: skip building it when only a silent logger would get it
        self._publish_claimed = logs_event(ev.JOB_CLAIMED) or any(
            h is not log_event for h in self.app.events.handlers(ev.JOB_CLAIMED)
        )
        self._serving = True
        self._events.emit(
            ev.WORKER_STARTED,
            queues=self.queues,
            concurrency=self.concurrency,
            broker=broker.kind,
            store=self.app.store,
            status="started",
        )
        try:
            self._loop(waker)
        finally:
            self._serving = False
            detach()
            heartbeat.stop()
            watch.stop()
            waker.close()
            for executor in self._executors.values():
                executor.shutdown()
            self.close()
            self._events.emit(ev.WORKER_STOPPED, status="stopped")
            flush_events()
            self.stopped.set()
        return 0

    def _loop(self, waker: Any) -> None:
        while True:
            if self._stop_requested:
                with self._turns_over:  # no slot starts a turn from here on
                    self._turns_over.wait_for(lambda: self._turns == 0)
                if self._drain_step(self._take_unreported() + self._collect()):
                    return
                continue
            try:
                self._take_turn()
                timeout = self._idle_timeout(
                    self._want and self._capacity() > len(self._running) + self._turn_slots,
                    self._saturated,
                )
            except BrokerError as exc:
                self._broker_trouble(exc)
                self._want = True
                continue
            self._outage.in_a_row = 0
            readable = self._wait([waker, self._completions], timeout)
            if waker in readable:
                waker.drain()
                self._want = True
            elif not readable:
                self._want = True  # timed out: a delayed job may be due, or capacity came back

    def _capacity(self) -> int:
        """How many jobs this worker may hold: its slots and its prefetch."""
        return self.concurrency + self.prefetch

    def _take_unreported(self) -> list[tuple[RunResult, Outcome]]:
        with self._lock:
            out, self._unreported = self._unreported, []
        return out

    def _take_turn(self) -> bool:
        """Report what finished and claim for the free slots, in one broker call; several
        threads may do this at once. On a broker error the results are kept for the next
        turn. True if the main thread should work out again how long it sleeps: a slot stays
        free with no work in sight (a delayed job may come due), a pool is full, or a new
        job has a timeout."""
        with self._lock:
            # a slot counts as taken until its job's outcome reaches the broker: the ended
            # jobs leave _running and count in _turn_slots in one step, so another turn never
            # claims for a slot whose lease the broker still holds
            results, entries, starts = self._pop_ended()
            earlier, self._unreported = self._unreported, []
            free = self._capacity() - len(self._running) - self._turn_slots
            limit = max(0, free) if self._want else 0
            held = max(limit, len(earlier) + len(results))
            self._turn_slots += held
        outcomes_ = earlier
        for job in starts:  # prefetched jobs take the slots that freed
            self._start(job)
        try:
            outcomes_ = earlier + self._decide_all(results, entries)
            if outcomes_ or limit > 0:
                asked = self.app.clock.now()  # the leases granted run from here at least
                accepted, claim = self.app.broker.finish_and_claim(
                    [o for _, o in outcomes_],
                    self.name,
                    self.queues,
                    limit,
                    self.app.lease_seconds,
                )
                self._outage.succeeded()
                with self._lock:  # the slots pass to the claimed jobs at once: a job started
                    self._turn_slots -= held  # below may end before this turn is over
                    held = 0
                    for job in claim.jobs:
                        self._running[job.id] = Running(job, None, None, asked)
                    self._ready.extend(claim.jobs)
                    starts = self._take_ready()
                self._after_exchange(outcomes_, accepted, claim, starts)
                if limit > 0:
                    self._want = len(claim.jobs) == limit
                    self._saturated = claim.saturated
                    if claim.saturated or any(job.timeout is not None for job in claim.jobs):
                        return True
        except BrokerError:
            with self._lock:  # reported again once the broker answers
                self._unreported = outcomes_ + self._unreported
            raise
        finally:
            if held:
                with self._lock:
                    self._turn_slots -= held
        return not self._want and len(self._running) < self._capacity()

    def _job_ended_buffered(self, result: RunResult) -> None:
        """A thread-executor slot's job ended while the worker prefetches: the slot starts
        the next prefetched job at once, on its own thread, and leaves the report (and the
        claim that tops the prefetch up) to the main thread, which sends the reports of
        every slot in one broker call."""
        with self._lock:
            entry = self._running.get(result.job.id)
            if entry is not None and not entry.ended:
                entry.ended = True
                self._active -= 1
            starts = self._take_ready()
        for job in starts:
            self._start(job)
        self._completions.put(result)

    def _take_ready(self) -> list[Job]:
        """Prefetched jobs for the free slots, now counted as started (lock held). None once
        the worker stops: those are released instead."""
        starts: list[Job] = []
        while self._ready and self._active < self.concurrency and not self._stop_requested:
            job = self._ready.popleft()
            self._active += 1
            self._running[job.id].started = True
            starts.append(job)
        return starts

    def _job_ended(self, result: RunResult) -> None:
        """A thread-executor slot's job ended, on that slot's thread: the slot takes a turn
        itself, so its next job is claimed without waking the main thread, and the slots'
        broker calls overlap each other's jobs."""
        with self._lock:
            if self._stop_requested or self._outage.active:
                # the main thread drains, or calls the failing broker (backing off)
                self._completions.put(result)
                return
            self._completions.put_quiet(result)
            self._turns += 1
        try:
            look_again = self._take_turn()
        except BrokerError as exc:  # the results wait in _unreported for the main thread
            self._outage.failed(exc)
            look_again = True
        finally:
            with self._turns_over:
                self._turns -= 1
                self._turns_over.notify_all()
        if look_again:
            self._completions.wake()

    def _wait(self, fds: list[Any], timeout: float) -> list[Any]:
        """Sleep until one of ``fds`` is readable or ``timeout`` passes (the executors'
        inbox is always among them); the readable ones. Log lines are written out first, and
        every ``LOG_FLUSH_SECONDS`` meanwhile while slots run (and write lines) on their own."""
        if timeout <= 0:
            return []
        inbox = self._completions
        if not inbox.arm():
            return [inbox]
        flush_events()
        readable: list[Any] = []
        end = time.monotonic() + timeout
        try:
            while True:
                step = end - time.monotonic()
                slots_log = self._turns_on_slots or self.prefetch  # slots start jobs themselves
                if slots_log and self._running and step > LOG_FLUSH_SECONDS:
                    step = LOG_FLUSH_SECONDS
                if step <= 0:
                    break
                readable, _, _ = select.select(fds, [], [], step)
                if readable:
                    break
                flush_events()
        except InterruptedError:
            pass
        finally:
            inbox.disarm(inbox in readable)
        return readable

    def _idle_timeout(self, more_wanted: bool, saturated: bool) -> float:
        if more_wanted:
            return 0.0
        now_m = time.monotonic()
        timeout = SATURATED_POLL_SECONDS if saturated else IDLE_POLL_SECONDS
        for executor in self._executors.values():
            executor.enforce_timeouts(now_m)
            d = executor.next_deadline()
            if d is not None:
                timeout = min(timeout, max(d - now_m, 0.001))
        if len(self._running) < self._capacity() and not saturated:
            # (saturated: the claim said a job is due and held back; no need to ask when)
            nxt = self.app.broker.next_run_at(self.queues)
            if nxt is not None:
                due_in = nxt - self.app.clock.now()
                # a job due already that the last claim left behind waits for a slot of its
                # pool (or the cap), which no wake-up announces: ask again soon, not at once
                timeout = min(timeout, due_in if due_in > 0 else SATURATED_POLL_SECONDS)
        return timeout

    def _broker_trouble(self, exc: BrokerError, most: float = float("inf")) -> None:
        """The broker failed (unreachable, refusing writes): note it, back off, keep jobs
        running. Results that end meanwhile wait in the inbox for the next turn."""
        self._outage.failed(exc, loop=True)
        flush_events()
        asked = (self._stop_requested, self.grace)  # a (second) stop request cuts it short
        pause = min(self._backoff.delay(self._outage.in_a_row, self._rng), most)
        self._completions.pause(pause, lambda: (self._stop_requested, self.grace) != asked)

    def _after_exchange(
        self,
        done: list[tuple[RunResult, Outcome]],
        accepted: list[bool],
        claim: ClaimResult,
        starts: list[Job],
    ) -> None:
        # Start the new jobs first: they run while the finished ones are logged.
        for job in starts:
            self._start(job)
        self._events.reported(done, accepted)
        self._events.reaped(claim.reaped)

    def _drain_step(self, done: list[tuple[RunResult, Outcome]]) -> bool:
        """One step of the graceful drain; True when the worker may exit."""
        if self._stop_at is None:
            self._stop_at = time.monotonic() + self.grace
            self._serving = False
            self._events.emit(
                ev.WORKER_STOPPING,
                status="draining",
                running=len(self._running),
                grace_seconds=self.grace,
            )
        remaining = self._stop_at - time.monotonic()
        try:
            if done:
                self._events.reported(done, self.app.broker.finish([o for _, o in done]))
                self._outage.succeeded()
                done = []  # reported: a failure below must not send them again
            if self._ready:  # prefetched jobs never start once stopping: released at once
                self._release_all(prefetched_only=True)
            if not self._running:
                return True
            if remaining <= 0 or self.grace <= 0:
                self._release_all()
                return True
        except BrokerError as exc:
            if remaining <= 0 or self.grace <= 0:
                # leases run out by themselves: the jobs come back after one lease
                what = {"error_type": type(exc).__name__, "error_message": str(exc)}
                self._events.emit(ev.WORKER_ERROR, None, status="broker_unavailable", **what)
                return True
            self._unreported = done
            self._broker_trouble(exc, most=remaining)
            return False
        self._wait([self._completions], min(remaining, 0.5))
        return False

    def _release_all(self, prefetched_only: bool = False) -> None:
        """Give the jobs back (no attempt consumed): all of them, or only the prefetched ones
        that never started. They leave this worker only once the broker took them back."""
        with self._lock:
            held = [
                r
                for r in self._running.values()
                if not prefetched_only or not (r.started or r.ended)
            ]
        leases = [Lease(r.job.id, r.job.attempt) for r in held]
        released = self.app.broker.release(leases) if leases else []
        with self._lock:
            for r in held:
                self._running.pop(r.job.id, None)
                if r.job in self._ready:
                    self._ready.remove(r.job)
        for r, ok in zip(held, released, strict=True):
            if ok:
                extra = {} if r.started else {"prefetched": True}  # it never started
                self._events.emit(ev.JOB_RELEASED, r.job, status="released", **extra)

    # jobs ----------------------------------------------------------------------------
    def _start(self, job: Job) -> None:
        """Hand a claimed job to its executor (the caller counted it in ``_active``)."""
        if self._publish_claimed:
            self._events.emit(ev.JOB_CLAIMED, job, status="running")
        try:
            task = self.app.get_task(job.task)
        except FaenaError as exc:
            error = outcomes.error_info(exc, type_name="UnknownTaskError")
            self._completions.put(RunResult(job, 0.0, error=error, retryable=False))
            return
        executor = self._executor_for(task)
        with self._lock:
            entry = self._running.get(job.id)  # registered by _take_turn; lost perhaps
            if entry is None:  # released at the end of a drain meanwhile
                return
            entry.task, entry.executor = task, executor
        executor.submit(job, task)

    def _executor_for(self, task: Task[Any, Any]) -> Executor:
        kind = self.isolation or task.options.isolation
        if kind is None:
            kind = Isolation.ASYNC if task.is_async else Isolation.THREAD
        if kind is Isolation.ASYNC and not task.is_async:
            kind = Isolation.THREAD
        executor = self._executors.get(kind)
        if executor is None:
            if kind is Isolation.THREAD:
                # a slot that can call the broker alongside the others takes its own turns;
                # with prefetch, it starts the next job itself and the main thread reports
                self._turns_on_slots = self.app.broker.parallel_calls and not self.prefetch
                ended = self._job_ended if self._turns_on_slots else None
                if self.prefetch:
                    ended = self._job_ended_buffered
                executor = ThreadExecutor(self.concurrency, self._completions, ended)
            elif kind is Isolation.ASYNC:
                executor = AsyncExecutor(self._completions)
            else:
                executor = ProcessExecutor(
                    self.concurrency, self._completions, self.app.import_path
                )
            self._executors[kind] = executor
        return executor

    def _collect(self) -> list[tuple[RunResult, Outcome]]:
        with self._lock:
            results, entries, starts = self._pop_ended()
        for job in starts:
            self._start(job)
        return self._decide_all(results, entries)

    def _pop_ended(self) -> tuple[list[RunResult], list[Running | None], list[Job]]:
        """The results waiting and the jobs they end, taken out of ``_running``, and the
        prefetched jobs that take the slots they free (lock held)."""
        results = self._completions.take_all()
        entries = [self._running.pop(r.job.id, None) for r in results]
        for entry in entries:
            if entry is not None and entry.started and not entry.ended:
                entry.ended = True
                self._active -= 1
        return results, entries, self._take_ready()

    def _decide_all(
        self, results: list[RunResult], entries: list[Running | None]
    ) -> list[tuple[RunResult, Outcome]]:
        if not results:
            return []
        now = self.app.clock.now()
        return [
            (r, self._decide(r, e.task if e else None, now))
            for r, e in zip(results, entries, strict=True)
            if e is None or not e.expired  # its lease ran out here: never reported
        ]

    def _decide(self, r: RunResult, task: Task[Any, Any] | None, now: float) -> Outcome:
        if r.cancelled:
            return outcomes.cancelled(r.job)
        if r.error is None:
            return outcomes.success(r.job, r.result_json or "null")
        policy = task.options.retry if task is not None else None
        if policy is None:
            return Outcome(r.job.id, r.job.attempt, JobState.DEAD, error=r.error)
        return outcomes.after_failure(
            r.job, r.error, retryable=r.retryable, policy=policy, now=now, rng=self._rng
        )
