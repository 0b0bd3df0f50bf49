"""Pipeline runs as the brokers store them: what ``create_run`` asks for, what they return.

A run is a record (id, pipeline, key, parameters) and its steps, each an ordinary job with
its upstreams and trigger rule; the rules of the hand-off are :mod:`faena.core.dependencies`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from faena.core.dependencies import (
    BLOCKED_AT,
    RESULTS_KEYWORD,
    RunState,
    TriggerRule,
    run_state,
)
from faena.core.job import NewJob, new_job_id
from faena.core.states import JobState
from faena.errors import ConfigError

#: a pipeline or step name: letters, digits, ``_ . -``, starting with a letter (it is a
#: metric label and a JSON key that needs no escaping)
NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_.\-]{0,99}$")
#: the longest run key kept
MAX_KEY_CHARS = 400


@dataclass(frozen=True, slots=True)
class NewStep:
    """One step of a run to create: its job, and the names of the steps it waits for."""

    name: str
    job: NewJob
    upstreams: tuple[str, ...] = ()
    rule: TriggerRule = TriggerRule.ALL_SUCCESS
    #: the job gets its upstreams' results as the keyword argument ``upstream``
    results: bool = False


@dataclass(frozen=True, slots=True)
class NewRun:
    """A run to create: ``steps`` in topological order (every upstream before its steps)."""

    pipeline: str
    key: str
    params_json: str
    steps: tuple[NewStep, ...]
    id: str = field(default_factory=new_job_id)


@dataclass(frozen=True, slots=True)
class StepRecord:
    """One step of a stored run and its job's state now (``None``: the job was pruned)."""

    name: str
    job_id: str
    upstreams: tuple[str, ...]
    rule: TriggerRule
    results: bool
    state: JobState | None = None
    error_type: str | None = None
    enqueued_at: float | None = None
    run_at: float | None = None
    started_at: float | None = None
    finished_at: float | None = None

    @property
    def waiting(self) -> bool:
        """Whether the step waits for its upstreams (a released one is ``scheduled`` and due,
        so runnable: a worker takes it as soon as its pool has room)."""
        return self.state is JobState.SCHEDULED and (self.run_at or 0.0) >= BLOCKED_AT


@dataclass(frozen=True, slots=True)
class RunRecord:
    id: str
    pipeline: str
    key: str
    params_json: str
    created_at: float
    steps: tuple[StepRecord, ...]
    #: whether the call that returned it created it (``False``: its key was taken)
    created: bool = False

    @property
    def state(self) -> RunState:
        return run_state([(s.state, s.error_type) for s in self.steps if s.state is not None])

    @property
    def finished_at(self) -> float | None:
        """When its last step ended, once the run has ended."""
        if self.state is RunState.RUNNING:
            return None
        return max((s.finished_at for s in self.steps if s.finished_at), default=None)

    def step(self, name: str) -> StepRecord:
        for s in self.steps:
            if s.name == name:
                return s
        raise KeyError(f"run {self.id} has no step {name!r}")


def check_run(run: NewRun) -> None:
    """Refuse a run the stores cannot keep (:class:`ConfigError` naming the problem)."""
    if not NAME.match(run.pipeline):
        raise ConfigError(f"pipeline name {run.pipeline!r} must match {NAME.pattern}")
    if not run.key or len(run.key) > MAX_KEY_CHARS:
        raise ConfigError(f"run key of {run.pipeline} must be 1 to {MAX_KEY_CHARS} characters")
    if not run.steps:
        raise ConfigError(f"pipeline {run.pipeline} has no steps")
    seen: set[str] = set()
    for step in run.steps:
        if not NAME.match(step.name):
            raise ConfigError(f"step name {step.name!r} must match {NAME.pattern}")
        if step.name in seen:
            raise ConfigError(f"pipeline {run.pipeline} has two steps named {step.name!r}")
        for up in step.upstreams:
            if up not in seen:
                raise ConfigError(
                    f"step {step.name!r} of {run.pipeline} waits for {up!r}, which is not a "
                    f"step declared before it (steps go in topological order)"
                )
        if step.job.idempotency_key is not None:
            raise ConfigError(
                f"step {step.name!r} of {run.pipeline} has an idempotency key; the run's key "
                f"({run.key!r}) is the one kept"
            )
        if step.results and f'"{RESULTS_KEYWORD}"' in step.job.kwargs_json:
            raise ConfigError(
                f"step {step.name!r} takes its upstreams' results as {RESULTS_KEYWORD}=; its "
                f"own keyword arguments cannot have that name"
            )
        seen.add(step.name)
