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

With ``prefetch="auto"`` (the default) the depth is decided from measured run times and round
trips (worker/adaptive.py): no-op jobs are prefetched, long jobs and pooled jobs are not. A
slot whose job ends starts a waiting prefetched job itself, as with N; with none waiting it
takes its turn as without prefetch.
"""

from __future__ import annotations

import os
import random
import signal
import socket
import threading
import time
import uuid
from collections.abc import Sequence
from types import FrameType
from typing import Any, Literal

from faena.app import App
from faena.brokers.protocol import WorkerSource
from faena.core import events as ev
from faena.core import outcomes
from faena.core.backoff import Backoff
from faena.core.job import Job, Outcome
from faena.core.logsink import LogSink
from faena.core.middleware import Middleware, WorkerInfo
from faena.core.options import Isolation
from faena.errors import BrokerError, ConfigError, FaenaError
from faena.task import Task
from faena.worker.adaptive import AdaptivePrefetch
from faena.worker.drain import Drain
from faena.worker.events import WorkerEvents
from faena.worker.executors import AsyncExecutor, Executor, ThreadExecutor, isolation_for
from faena.worker.hooks import worker_chain
from faena.worker.idle import sleep_on
from faena.worker.leases import Leases
from faena.worker.ledger import Running, SlotLedger
from faena.worker.outage import Outage
from faena.worker.prefetching import Prefetching
from faena.worker.registration import Registration
from faena.worker.results import Completions, RunResult, decide_all
from faena.worker.retention import Retention
from faena.worker.sized_pools import SizedPools

DEFAULT_CONCURRENCY = 16
DEFAULT_GRACE_SECONDS = 25.0
IDLE_POLL_SECONDS = 5.0  # safety net only: wake-ups come from the broker's waker
SATURATED_POLL_SECONDS = 0.05
Prefetch = int | Literal["auto"]  # jobs claimed ahead of a free slot: fixed, or adaptive


class Worker:
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
        prefetch: Prefetch = "auto",
        log_sink: LogSink | None = None,
        source: WorkerSource | None = None,
        middleware: Sequence[Middleware] = (),
    ) -> None:
        """``log_sink``: where the events' lines go and when they are written out (default:
        the app's, ``app.log_sink``). ``source``: where jobs come from (default: the app's
        broker); any :class:`~faena.brokers.protocol.WorkerSource`, e.g. a Camunda engine.
        ``middleware``: hooks of this worker, inside the app's (``self.middleware.add`` adds
        more before :meth:`run`; docs/middleware.md). ``prefetch``: jobs claimed ahead of a
        free slot, a number (0: none) or ``"auto"``, sized from measured run times."""
        if concurrency < 1:
            raise ConfigError(f"concurrency must be >= 1, got {concurrency}")
        auto = prefetch == "auto"
        if not auto and (
            isinstance(prefetch, bool) or not isinstance(prefetch, int) or prefetch < 0
        ):
            raise ConfigError(
                "prefetch must be 'auto' or an int >= 0 (jobs claimed ahead of a free slot), "
                f"got {prefetch!r}"
            )
        self.app = app
        self._source = source
        self.queues = queues or sorted({t.options.queue for t in app.tasks.values()} or {"default"})
        self.concurrency = concurrency
        fixed = 0 if auto else int(prefetch)
        self.prefetch: Prefetch = "auto" if auto else fixed
        # the adaptive prefetch's decisions (None: a fixed prefetch)
        self._adaptive = AdaptivePrefetch(concurrency) if auto else None
        self.isolation = Isolation(isolation) if isolation is not None else None
        self.grace = grace
        self.name = name or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self._events = WorkerEvents(app.events, app.clock, self.name)
        self.middleware, self._job_events = worker_chain(self._events, app.middleware, middleware)
        self._log = app.log_sink if log_sink is None else log_sink
        self._flush = self._log.flush
        self.install_signals = install_signals
        self._serving = False  # started and not draining (see ``ready``)
        self.stopped = threading.Event()
        # the lock guards the ledger, the unreported outcomes and the turns on slot threads;
        # the ledger's ``stopping`` is a plain flag, not a threading.Event: stop() runs in
        # signal handlers, and Event.set takes a lock that a second signal, arriving while
        # the first handler holds it, would wait for forever (one handler inside the other)
        self._ledger = SlotLedger(concurrency, fixed)
        self._lock = threading.Lock()
        self._completions = Completions()
        self._unreported: list[tuple[RunResult, Outcome]] = []
        self._turns_over = threading.Condition(self._lock)
        self._turns_on_slots = False  # slots take turns (and log) on their own threads
        self._outage = Outage(self._events, flush=self._flush)
        self._leases = Leases(
            self._lock, self._ledger, self._completions, self._events, self._flush
        )
        # the app's pools and the store's (a default pool sized with `faena pools set`)
        self._sized_pools = SizedPools(
            lambda: self.app.pools, None if source is not None else lambda: app.broker.pool_stats()
        )
        self._prefetching = Prefetching(
            self._adaptive, concurrency, self._ledger, self._lock, self._events, self._outage,
            source=lambda: self.source, pools=self._sized_pools, start=self._start,
        )  # fmt: skip
        self._backoff = Backoff()
        self._executors: dict[Isolation, Executor] = {}
        self._rng = random.Random()
        self._log.attach(app.events)

    @property
    def source(self) -> WorkerSource:
        """Where this worker claims jobs and reports them: the app's broker unless given."""
        return self.app.broker if self._source is None else self._source

    @property
    def ready(self) -> bool:  # started, not draining, the broker answers: /readyz
        return self._serving and not self._outage.active

    @property
    def jobs_running(self) -> int:
        """Jobs handed to an executor whose attempt has not ended (prefetched ones wait)."""
        return self._ledger.active

    # control -------------------------------------------------------------------------
    def stop(self, graceful: bool = True) -> None:
        """Stop claiming now; finish running jobs within the grace budget, then release.
        Takes no lock, so a signal handler may call it, even inside another call."""
        if self._ledger.stopping or not graceful:
            self.grace = 0.0
        self._ledger.stopping = True
        self._completions.poke()

    def _signal(self, signum: int, frame: FrameType | None) -> None:
        self.stop()

    def close(self) -> None:
        """Close the results inbox's sockets: :meth:`run` does when it returns; a worker that
        is never run is closed here. A :meth:`stop` afterwards is harmless."""
        self._completions.close()

    def _retention(self) -> Retention | None:
        keep = self.app.retention_seconds
        return None if keep is None else Retention(self.app.broker, keep, self.app.clock, self.name)

    # main loop -----------------------------------------------------------------------
    def run(self) -> int:
        broker = self.source
        if self.install_signals and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, self._signal)
            signal.signal(signal.SIGINT, self._signal)
        waker = broker.waker(self.queues)
        lease, clock = self.app.lease_seconds, self.app.clock
        registration = None  # the registry is the store's: a Camunda engine source has none
        if self._source is None:
            registration = Registration(
                self.app.broker, self.name, self.queues, self.concurrency, lease, clock,
                draining=lambda: self._ledger.stopping, retention=self._retention(),
            )  # fmt: skip
        heartbeat, watch = self._leases.keepers(
            broker, self.name, lease, clock, self._outage, registration
        )
        drain = Drain(
            broker,
            self._ledger,
            self._lock,
            self._events,
            self._outage,
            trouble=self._broker_trouble,
            wait=lambda seconds: self._wait([self._completions], seconds),
        )
        detach = self._outage.attach(broker)  # its client's retries tell of an outage
        heartbeat.start()
        watch.start()
        self._log.batch()
        self._job_events.publish_claimed = self._log.needs(self.app.events, ev.JOB_CLAIMED)
        self._serving = True
        self._events.emit(
            ev.WORKER_STARTED,
            queues=self.queues,
            concurrency=self.concurrency,
            broker=broker.kind,
            store=self.app.store if self._source is None else broker.kind,
            status="started",
        )
        info = WorkerInfo(self.name, tuple(self.queues), self.concurrency)
        self.middleware.worker_started(info)
        try:
            self._loop(waker, drain)
        finally:
            self._serving = False
            detach()
            heartbeat.stop()
            if registration is not None:
                registration.stopped()
            watch.stop()
            waker.close()
            for executor in self._executors.values():
                executor.shutdown()
            self.close()
            self.middleware.worker_stopped(info)
            self._events.emit(
                ev.WORKER_STOPPED, status="stopped", **self._prefetching.summary(self.prefetch)
            )
            self._flush()
            self.stopped.set()
        return 0

    def _loop(self, waker: Any, drain: Drain) -> None:
        ledger = self._ledger
        while True:
            if ledger.stopping:
                with self._turns_over:  # no slot starts a turn from here on
                    self._turns_over.wait_for(lambda: ledger.turns == 0)
                self._serving = False
                done, unreported = drain.step(self._take_unreported() + self._collect(), self.grace)
                if done:
                    return
                self._unreported = unreported
                continue
            try:
                if self._adaptive is not None:
                    self._sized_pools.refresh()  # every REFRESH_SECONDS: a broker call
                self._take_turn()
                timeout = self._idle_timeout(ledger.more_wanted(), ledger.saturated)
                stall = self._prefetching.release_stalled()
                if stall is not None:
                    timeout = min(timeout, stall)
            except BrokerError as exc:
                self._broker_trouble(exc)
                ledger.want = True
                continue
            self._outage.in_a_row = 0
            readable = self._wait([waker, self._completions], timeout)
            if waker in readable:
                waker.drain()
                ledger.want = True
            elif not readable:
                ledger.want = True  # timed out: a delayed job may be due, or capacity came back

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
        ledger = self._ledger
        with self._lock:
            # a slot counts as taken until its job's outcome reaches the broker: the ended
            # jobs leave the ledger's running and count in its turn slots in one step, so
            # another turn never claims for a slot whose lease the broker still holds
            results, entries, starts = self._pop_ended()
            earlier, self._unreported = self._unreported, []
            self._prefetching.ran(results)
            limit, held = ledger.begin_turn(len(earlier) + len(results))
        granted = self.middleware.before_claim(self.queues, limit) if limit else 0
        outcomes_ = earlier
        for job in starts:  # prefetched jobs take the slots that freed
            self._start(job)
        try:
            outcomes_ = earlier + decide_all(results, entries, self.app.clock.now(), self._rng)
            if outcomes_ or granted > 0:
                asked = self.app.clock.now()  # the leases granted run from here at least
                sent = time.monotonic()
                accepted, claim = self.source.finish_and_claim(
                    [o for _, o in outcomes_],
                    self.name,
                    self.queues,
                    granted,
                    self.app.lease_seconds,
                )
                self._outage.succeeded()
                with self._lock:  # the slots pass to the claimed jobs at once: a job started
                    starts = ledger.claimed(claim.jobs, asked, held)  # below may end before
                    held = 0  # this turn is over
                    pooled_waiting = self._prefetching.claimed(granted, time.monotonic() - sent)
                if pooled_waiting:  # a pool's slot is never held in a prefetch: given back
                    self._prefetching.let_go(pooled_waiting, "pool")
                self.middleware.after_claim(claim.jobs)
                for job in starts:  # the new jobs run while the finished ones are logged
                    self._start(job)
                self._events.reported(outcomes_, accepted)
                self._events.reaped(claim.reaped)
                if granted > 0:
                    ledger.after_claim(granted, len(claim.jobs), claim.saturated)
                    timeouts = any(job.timeout is not None for job in claim.jobs)
                    if granted == limit and (claim.saturated or timeouts):
                        return True
        except BrokerError:
            with self._lock:  # reported again once the broker answers
                self._unreported = outcomes_ + self._unreported
            raise
        finally:
            if held:
                with self._lock:
                    ledger.end_turn(held)
        if granted < limit:  # a middleware held the claim back: ask again soon
            ledger.held_back()
            return True
        return not ledger.want and ledger.has_room()

    def _job_ended_auto(self, result: RunResult) -> None:
        """The adaptive prefetch: a slot whose job ended starts a waiting prefetched job
        itself; with none waiting it takes its turn (or leaves it to the main thread) as
        without prefetch."""
        with self._lock:
            waiting = bool(self._ledger.ready)
        if waiting:
            self._job_ended_buffered(result)
        elif self._turns_on_slots:
            self._job_ended(result)
        else:
            self._completions.put(result)

    def _job_ended_buffered(self, result: RunResult) -> None:
        """A thread-executor slot's job ended while the worker prefetches: the slot starts
        the next prefetched job at once, on its own thread, and leaves the report (and the
        claim that tops the prefetch up) to the main thread, which sends the reports of
        every slot in one broker call. It wakes the main thread only once the prefetch runs
        low (or the report must not wait), so that call carries several jobs' reports."""
        with self._lock:
            starts = self._ledger.slot_freed(result.job.id, result.job.attempt)
            self._prefetching.moved()
            later = self._prefetching.report_may_wait(result, starts)
        for job in starts:
            self._start(job)
        if later:
            self._completions.put_later(result)
        else:
            self._completions.put(result)

    def _job_ended(self, result: RunResult) -> None:
        """A thread-executor slot's job ended, on that slot's thread: the slot takes a turn
        itself, so its next job is claimed without waking the main thread, and the slots'
        broker calls overlap each other's jobs."""
        with self._lock:
            if self._ledger.stopping or self._outage.active:
                # the main thread drains, or calls the failing broker (backing off)
                self._completions.put(result)
                return
            self._completions.put_quiet(result)
            self._ledger.turns += 1
        try:
            look_again = self._take_turn()
        except BrokerError as exc:  # the results wait in _unreported for the main thread
            self._outage.failed(exc)
            look_again = True
        finally:
            with self._turns_over:
                self._ledger.turns -= 1
                self._turns_over.notify_all()
        if look_again or (self._adaptive is not None and self._ledger.ready):
            self._completions.wake()  # (the main thread watches waiting prefetched jobs)

    def _wait(self, fds: list[Any], timeout: float) -> list[Any]:
        return sleep_on(fds, timeout, self._completions, self._flush, self._slots_log)

    def _slots_log(self) -> bool:
        """Slots start jobs (and write lines) on their own threads while the main one sleeps."""
        return bool((self._turns_on_slots or self.prefetch) and self._ledger.running)

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
        if self._ledger.has_room() and not saturated:
            # (saturated: the claim said a job is due and held back; no need to ask when)
            nxt = self.source.next_run_at(self.queues)
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
        self._flush()
        asked = (self._ledger.stopping, self.grace)  # a (second) stop request cuts it short
        pause = min(self._backoff.delay(self._outage.in_a_row, self._rng), most)
        self._completions.pause(pause, lambda: (self._ledger.stopping, self.grace) != asked)

    # jobs ----------------------------------------------------------------------------
    def _start(self, job: Job) -> None:
        """Hand a claimed job to its executor (the ledger counts it as active already)."""
        self.middleware.before_execute(job)  # the first, JobEvents, logs job.claimed
        try:
            task = self.app.get_task(job.task)
        except FaenaError as exc:
            error = outcomes.error_info(exc, type_name="UnknownTaskError")
            self._completions.put(RunResult(job, 0.0, error=error, retryable=False))
            return
        executor = self._executor_for(task)
        with self._lock:
            entry = self._ledger.running.get(job.id)  # registered by its turn; lost perhaps
            if entry is None:  # released at the end of a drain meanwhile
                return
            entry.task, entry.executor = task, executor
        executor.submit(job, task)

    def _executor_for(self, task: Task[Any, Any]) -> Executor:
        kind = isolation_for(task, self.isolation)
        executor = self._executors.get(kind)
        if executor is None:
            if kind is Isolation.THREAD:
                # a slot that can call the broker alongside the others takes its own turns;
                # with prefetch, it starts the next job itself and the main thread reports
                fixed = self.prefetch != "auto" and self.prefetch > 0
                self._turns_on_slots = self.source.parallel_calls and not fixed
                ended = self._job_ended if self._turns_on_slots else None
                if fixed:
                    ended = self._job_ended_buffered
                elif self._adaptive is not None:
                    ended = self._job_ended_auto
                executor = ThreadExecutor(
                    self.concurrency, self._completions, ended, self.middleware
                )
            elif kind is Isolation.ASYNC:
                executor = AsyncExecutor(self._completions, self.middleware)
            else:  # subprocess and multiprocessing load with the first process-isolated task
                from faena.worker.processes import ProcessExecutor

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
        return decide_all(results, entries, self.app.clock.now(), self._rng)

    def _pop_ended(self) -> tuple[list[RunResult], list[Running | None], list[Job]]:
        """The results waiting and the ledger entries of the jobs they end, and the
        prefetched jobs that take the slots they free (lock held)."""
        results = self._completions.take_all()
        entries = self._ledger.pop_ended(
            [r.job.id for r in results], [r.job.attempt for r in results]
        )
        starts = self._ledger.take_ready()
        if results or starts:
            self._prefetching.moved()
        return results, entries, starts
