"""Pipelines declared in code: steps (faena tasks with their options, overridable per step),
their upstreams, trigger rules, and chains and groups as sugar over the DAG.

``Pipeline.run(**params)`` builds a :class:`faena.core.runs.NewRun` and hands it to the
broker, which creates the run and every step's job in one atomic step."""

from __future__ import annotations

import itertools
import json
import logging
import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeAlias

from faena.core import payload
from faena.core.dependencies import TriggerRule
from faena.core.runs import NAME, NewRun, NewStep, RunRecord, check_run
from faena.errors import ConfigError

if TYPE_CHECKING:
    from faena.app import App
    from faena.task import Task


_log = logging.getLogger("faena.pipelines")


@dataclass(frozen=True, slots=True)
class Param:
    """A run parameter, filled into a step's arguments when the run is created."""

    name: str


def param(name: str) -> Param:
    """``p.step("load", load, kwargs={"day": param("day")})``: the run's ``day``."""
    return Param(name)


@dataclass(eq=False)
class Step:
    """One step of a pipeline (see :meth:`Pipeline.step`)."""

    pipeline: Pipeline
    name: str
    task: str
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    options: dict[str, Any]
    rule: TriggerRule
    results: bool
    upstreams: list[Step] = field(default_factory=list)

    def after(self, *steps: Step) -> Step:
        """Make this step wait for ``steps`` too; returns itself."""
        for s in steps:
            self.pipeline._check_own(s)
            if s is self or self in s.ancestors():
                raise ConfigError(
                    f"step {self.name!r} of {self.pipeline.name} cannot wait for {s.name!r}: "
                    f"that would make a cycle"
                )
            if s not in self.upstreams:
                self.upstreams.append(s)
        return self

    def ancestors(self) -> set[Step]:
        seen: set[Step] = set()
        todo = list(self.upstreams)
        while todo:
            s = todo.pop()
            if s not in seen:
                seen.add(s)
                todo.extend(s.upstreams)
        return seen

    def __rshift__(self, other: Step | Sequence[Step]) -> Step | Sequence[Step]:
        """``a >> b`` (b after a), ``a >> [b, c]`` (fan-out), as in Airflow."""
        for s in [other] if isinstance(other, Step) else other:
            s.after(self)
        return other

    def __rrshift__(self, other: Sequence[Step]) -> Step:
        """``[a, b] >> c``: c after a and b (fan-in)."""
        return self.after(*other)


Link: TypeAlias = Step | Sequence[Step]

#: pipelines declared on each app, by name (for ``faena pipelines`` and the API)
_DECLARED: weakref.WeakKeyDictionary[App, dict[str, Pipeline]] = weakref.WeakKeyDictionary()


def declared(app: App) -> dict[str, Pipeline]:
    """The pipelines declared on ``app``, by name."""
    return dict(_DECLARED.get(app, {}))


class Pipeline:
    """A DAG of faena tasks. ``key``: how a run's idempotency key is made from its
    parameters (a ``str.format`` template such as ``"{day}"``, or a function); by default
    the parameters' JSON. The pipeline's name is always part of the key."""

    def __init__(
        self,
        app: App,
        name: str,
        *,
        key: str | Callable[[Mapping[str, Any]], str] | None = None,
    ) -> None:
        if not NAME.match(name):
            raise ConfigError(f"pipeline name {name!r} must match {NAME.pattern}")
        found = _DECLARED.setdefault(app, {})
        if name in found:
            raise ConfigError(f"a pipeline named {name!r} is declared already on this app")
        self.app = app
        self.name = name
        self._key = key
        self.steps: list[Step] = []
        found[name] = self

    def __repr__(self) -> str:
        return f"<Pipeline {self.name} ({len(self.steps)} steps)>"

    def step(
        self,
        name: str,
        task: Task[Any, Any] | str,
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        *,
        after: Link = (),
        rule: TriggerRule | str = TriggerRule.ALL_SUCCESS,
        results: bool = False,
        **options: Any,
    ) -> Step:
        """Add a step running ``task`` with ``args``/``kwargs`` (a :func:`param` in them is
        the run's parameter); ``options`` override the task's (queue, pool, pool_slots,
        retries, timeout, priority). ``results``: the task gets its upstreams' results as
        the keyword argument ``upstream`` (step name -> result)."""
        if not NAME.match(name):
            raise ConfigError(f"step name {name!r} must match {NAME.pattern}")
        if any(s.name == name for s in self.steps):
            raise ConfigError(f"pipeline {self.name} has a step named {name!r} already")
        try:
            trigger = TriggerRule(rule)
        except ValueError:
            known = ", ".join(r.value for r in TriggerRule)
            raise ConfigError(
                f"step {name!r}: trigger rule {rule!r} is not one of {known}"
            ) from None
        if "idempotency_key" in options or "delay" in options:
            raise ConfigError(f"step {name!r}: a step takes no idempotency_key or delay")
        task_name = task if isinstance(task, str) else task.name
        self.app._job_fields(task_name, options)  # refuse bad options now, not at run()
        step = Step(
            self, name, task_name, tuple(args), dict(kwargs or {}), options, trigger, results
        )
        self.steps.append(step)
        ups = [after] if isinstance(after, Step) else list(after)
        step.after(*ups)
        return step

    def chain(self, *links: Link) -> Link:
        """Each link after the one before it; a link that is a list of steps is a group:
        every step of it after the previous link, and the next link after all of them."""
        for before, nxt in itertools.pairwise(links):
            for s in [nxt] if isinstance(nxt, Step) else nxt:
                s.after(*([before] if isinstance(before, Step) else before))
        return links[-1]

    def _check_own(self, step: Step) -> None:
        if step.pipeline is not self:
            raise ConfigError(f"step {step.name!r} belongs to pipeline {step.pipeline.name}")

    def ordered(self) -> list[Step]:
        """The steps in topological order (declaration order where it allows)."""
        out: list[Step] = []
        placed: set[Step] = set()
        todo = list(self.steps)
        while todo:
            ready = [s for s in todo if all(u in placed for u in s.upstreams)]
            for s in ready:
                out.append(s)
                placed.add(s)
            todo = [s for s in todo if s not in placed]
        return out

    def run_key(self, params: Mapping[str, Any]) -> str:
        if self._key is None:
            own = json.dumps(params, sort_keys=True, separators=(",", ":"))
        elif isinstance(self._key, str):
            try:
                own = self._key.format(**params)
            except (KeyError, IndexError) as exc:
                raise ConfigError(
                    f"run key template {self._key!r} of {self.name} needs parameter {exc}"
                ) from None
        else:
            own = str(self._key(params))
        return f"{self.name}:{own}"

    def build(self, params: Mapping[str, Any], key: str | None = None) -> NewRun:
        """The run to create for ``params`` (checked; nothing is written)."""
        if not self.steps:
            raise ConfigError(f"pipeline {self.name} has no steps; add some with .step()")
        text = payload.encode("params", dict(params), self.app.max_payload_bytes, str_keys=True)
        new_steps = []
        for s in self.ordered():
            fields = self.app._job_fields(s.task, s.options)
            args = [_fill(a, params, s) for a in s.args]
            kwargs = {k: _fill(v, params, s) for k, v in s.kwargs.items()}
            job = self.app._new_job(fields, args, kwargs)
            new_steps.append(
                NewStep(s.name, job, tuple(u.name for u in s.upstreams), s.rule, s.results)
            )
        run = NewRun(self.name, key or self.run_key(params), text, tuple(new_steps))
        check_run(run)
        return run

    def run(self, *, run_key: str | None = None, **params: Any) -> RunRecord:
        """Create a run (one atomic broker step); a run with the same key that is kept
        already is returned instead (``created`` tells which)."""
        record = self.app.broker.create_run(self.build(params, run_key))
        if record.created:
            _log.info(
                f"pipeline {self.name} run {record.id} started",
                extra={
                    "event": "pipeline.run_started",
                    "pipeline": self.name,
                    "run_id": record.id,
                    "status": record.state.value,
                    "run_key": record.key,
                    "steps": len(record.steps),
                },
            )
        return record


def _fill(value: Any, params: Mapping[str, Any], step: Step) -> Any:
    if isinstance(value, Param):
        if value.name not in params:
            raise ConfigError(
                f"step {step.name!r} of {step.pipeline.name} needs run parameter "
                f"{value.name!r}; run it with {value.name}=..."
            )
        return params[value.name]
    if isinstance(value, list | tuple):
        return [_fill(v, params, step) for v in value]
    if isinstance(value, dict):
        return {k: _fill(v, params, step) for k, v in value.items()}
    return value
