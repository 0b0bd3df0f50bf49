"""Pipeline runs of the memory broker: the rules of :mod:`faena.core.dependencies` applied
under the broker's lock, in the same step as the job change that ends an upstream."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING

from faena.brokers.refusals import no_such_run
from faena.core import checks, lifecycle
from faena.core.dependencies import (
    BLOCKED_AT,
    SKIPPED,
    SKIPPED_MESSAGE,
    Decision,
    RetryAction,
    TriggerRule,
    decide,
    plan_retry,
    upstream_results,
    with_results,
)
from faena.core.job import ErrorInfo, Job
from faena.core.runs import NewRun, RunRecord, StepRecord, check_run
from faena.core.states import LIVE, TERMINAL, JobState, check_transition
from faena.errors import InvalidTransitionError, JobNotFoundError

if TYPE_CHECKING:
    from faena.core.clock import Clock


@dataclass(frozen=True, slots=True)
class _Step:
    run_id: str
    name: str
    rule: TriggerRule
    results: bool
    kwargs_json: str  # as declared
    ups: tuple[str, ...]  # job ids
    downs: tuple[str, ...]  # job ids


@dataclass(frozen=True, slots=True)
class _Run:
    id: str
    pipeline: str
    key: str
    params_json: str
    created_at: float
    jobs: tuple[str, ...]  # step job ids, in topological order


def blocked(job: Job) -> bool:
    """Whether ``job`` is a step waiting for its upstreams."""
    return job.state is JobState.SCHEDULED and job.run_at >= BLOCKED_AT


class MemoryPipelines:
    """Mixed into :class:`faena.brokers.memory.MemoryBroker` (its jobs, lock and clock)."""

    _lock: threading.RLock
    _clock: Clock
    _jobs: dict[str, Job]
    _order: dict[str, int]
    _seq: int

    def _init_pipelines(self) -> None:
        self._runs: dict[str, _Run] = {}
        self._run_keys: dict[str, str] = {}
        self._steps: dict[str, _Step] = {}
        self._ended_noted: dict[str, float] = {}  # run id: the finished_at last reported

    if TYPE_CHECKING:  # the broker's

        def _wake_all(self) -> None: ...

        def _check_pool(self, pool: str) -> None: ...

        def _put_step(self, new: Job) -> Job: ...

        def _count_skip(self, queue: str, now: float) -> None: ...

    def create_run(self, run: NewRun) -> RunRecord:
        check_run(run)
        checks.check_new_jobs([s.job for s in run.steps])
        now = self._clock.now()
        with self._lock:
            held = self._run_keys.get(run.key)
            if held is not None:
                return self._record(self._runs[held])
            for step in run.steps:
                self._check_pool(step.job.pool)
            ids = {s.name: s.job.id for s in run.steps}
            downs: dict[str, list[str]] = {s.job.id: [] for s in run.steps}
            for step in run.steps:
                for up in step.upstreams:
                    downs[ids[up]].append(step.job.id)
            for step in run.steps:
                job = lifecycle.create(step.job, now)
                if step.upstreams:
                    job = job.evolve(state=JobState.SCHEDULED, run_at=BLOCKED_AT)
                self._jobs[job.id] = job
                self._seq += 1
                self._order[job.id] = self._seq
                self._steps[job.id] = _Step(
                    run.id,
                    step.name,
                    step.rule,
                    step.results,
                    step.job.kwargs_json,
                    tuple(ids[u] for u in step.upstreams),
                    tuple(downs[job.id]),
                )
            stored = _Run(run.id, run.pipeline, run.key, run.params_json, now, tuple(ids.values()))
            self._runs[run.id] = stored
            self._run_keys[run.key] = run.id
            self._wake_all()
            return self._record(stored, created=True)

    def _hand_off(self, ended: str) -> None:
        """``ended`` (a step's job) has just ended: release or skip its waiting downstreams,
        and theirs in turn (iteratively: a long chain of skips needs no deep stack)."""
        now = self._clock.now()
        todo = [ended]
        woken = False
        while todo:
            for down in self._steps[todo.pop()].downs:
                job = self._jobs.get(down)
                if job is None or not blocked(job):
                    continue
                step = self._steps[down]
                ups = [self._jobs[u] for u in step.ups if u in self._jobs]
                decision = decide(step.rule, [u.state for u in ups])
                if decision is Decision.RELEASE:
                    kwargs = job.kwargs_json
                    if step.results:
                        results = {self._steps[u.id].name: u.result_json for u in ups}
                        kwargs = with_results(step.kwargs_json, upstream_results(results))
                    self._jobs[down] = job.evolve(run_at=now, kwargs_json=kwargs)
                    woken = True
                elif decision is Decision.SKIP:
                    check_transition(down, job.state, JobState.CANCELLED)
                    message = SKIPPED_MESSAGE.format(rule=step.rule.value)
                    self._jobs[down] = job.evolve(
                        state=JobState.CANCELLED,
                        finished_at=now,
                        error=ErrorInfo(SKIPPED, message),
                    )
                    self._count_skip(job.queue, now)
                    todo.append(down)
        if woken:
            self._wake_all()

    def _record(self, run: _Run, created: bool = False) -> RunRecord:
        steps = []
        for job_id in run.jobs:
            step, job = self._steps[job_id], self._jobs.get(job_id)
            ups = tuple(self._steps[u].name for u in step.ups)
            if job is None:
                steps.append(StepRecord(step.name, job_id, ups, step.rule, step.results))
                continue
            steps.append(
                StepRecord(
                    step.name,
                    job_id,
                    ups,
                    step.rule,
                    step.results,
                    job.state,
                    None if job.error is None else job.error.type,
                    job.enqueued_at,
                    job.run_at,
                    job.started_at,
                    job.finished_at,
                )
            )
        return RunRecord(
            run.id, run.pipeline, run.key, run.params_json, run.created_at, tuple(steps), created
        )

    def get_run(self, run_id: str) -> RunRecord | None:
        checks.check_text("run id", run_id)
        with self._lock:
            run = self._runs.get(run_id)
            return None if run is None else self._record(run)

    def note_run_ended(self, run_id: str, finished_at: float) -> bool:
        checks.check_text("run id", run_id)
        with self._lock:
            if run_id not in self._runs or self._ended_noted.get(run_id) == finished_at:
                return False
            self._ended_noted[run_id] = finished_at
            return True

    def list_runs(
        self, *, pipeline: str | None = None, limit: int = 100, offset: int = 0
    ) -> list[RunRecord]:
        checks.check_filters(None, None, pipeline, limit, offset)
        with self._lock:
            runs = [r for r in self._runs.values() if pipeline is None or r.pipeline == pipeline]
            runs.reverse()  # dicts keep insertion order: newest last
            return [self._record(r) for r in runs[offset : offset + limit]]

    def _require_run(self, run_id: str) -> _Run:
        checks.check_text("run id", run_id)
        run = self._runs.get(run_id)
        if run is None:
            raise JobNotFoundError(no_such_run(run_id))
        return run

    def retry_run(self, run_id: str) -> RunRecord:
        now = self._clock.now()
        with self._lock:
            run = self._require_run(run_id)
            present = [j for j in run.jobs if j in self._jobs]
            plan = plan_retry(
                [(j, self._jobs[j].state, self._steps[j].rule, self._steps[j].ups) for j in present]
            )
            for job_id, action in plan.items():
                if action is RetryAction.KEEP:
                    continue
                job = lifecycle.manual_retry(self._jobs[job_id], now).evolve(error=None)
                step = self._steps[job_id]
                if action is RetryAction.WAIT:
                    job = job.evolve(
                        state=JobState.SCHEDULED, run_at=BLOCKED_AT, kwargs_json=step.kwargs_json
                    )
                elif step.results:  # runs now: its upstreams' results as they stand
                    results = {
                        self._steps[u].name: self._jobs[u].result_json
                        for u in step.ups
                        if u in self._jobs
                    }
                    kwargs = with_results(step.kwargs_json, upstream_results(results))
                    job = job.evolve(kwargs_json=kwargs)
                check_transition(job_id, self._jobs[job_id].state, job.state)
                self._jobs[job_id] = job
            self._wake_all()
            return self._record(run)

    def cancel_run(self, run_id: str) -> RunRecord:
        now = self._clock.now()
        with self._lock:
            run = self._require_run(run_id)
            for job_id in reversed(run.jobs):
                job = self._jobs.get(job_id)
                if job is None or job.state not in LIVE:
                    continue
                try:
                    self._put_step(lifecycle.cancel(job, now))
                except InvalidTransitionError:  # pragma: no cover - LIVE is cancellable
                    continue
            return self._record(run)


def ends(old: Job, new: Job) -> bool:
    """Whether a change from ``old`` to ``new`` ends the job."""
    return new.state in TERMINAL and old.state not in TERMINAL
