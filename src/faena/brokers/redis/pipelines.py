"""Pipeline runs of the Redis broker: ``create_run.lua`` writes a run and all its steps in
one function call; the hand-off is ``hand_off`` in ``lua/pipelines.lua``, called by the
functions that end a job (finish, a lease that ran out, cancel) in the same call."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from faena.brokers.redis.codec import num, priority_rank, rows
from faena.brokers.refusals import no_such_run, unknown_pool
from faena.core import checks
from faena.core.clock import Clock
from faena.core.dependencies import RetryAction, TriggerRule, plan_retry
from faena.core.job import Job
from faena.core.runs import NewRun, RunRecord, StepRecord, check_run
from faena.core.states import LIVE, JobState
from faena.errors import InvalidTransitionError, JobNotFoundError, UnknownPoolError


def _opt(text: str) -> float | None:
    return None if text == "" else float(text)


def to_run(view: Sequence[Any], created: bool = False) -> RunRecord:
    steps = tuple(
        StepRecord(
            s[0],
            s[1],
            tuple(n for n in s[2].split(",") if n),
            TriggerRule(s[3]),
            s[4] == "1",
            None if s[5] == "" else JobState(s[5]),
            s[6] or None,
            _opt(s[7]),
            _opt(s[8]),
            _opt(s[9]),
            _opt(s[10]),
        )
        for s in view[5]
    )
    return RunRecord(view[0], view[1], view[2], view[3], float(view[4]), steps, created)


class RedisPipelines:
    """Mixed into :class:`faena.brokers.redis.broker.RedisBroker`, which has these:"""

    _clock: Clock
    if TYPE_CHECKING:

        def _run(self, name: str, now: float, args: Sequence[str]) -> Any: ...

        def _pools_known(self) -> list[str]: ...

        def cancel(self, job_id: str) -> Job: ...

    def create_run(self, run: NewRun) -> RunRecord:
        check_run(run)
        checks.check_new_jobs([s.job for s in run.steps])
        ids = {s.name: s.job.id for s in run.steps}
        downs: dict[str, list[str]] = {s.job.id: [] for s in run.steps}
        for step in run.steps:
            for up in step.upstreams:
                downs[ids[up]].append(step.job.id)
        steps = []
        for step in run.steps:
            job = step.job
            steps.append(
                {
                    "id": job.id,
                    "task": job.task,
                    "queue": job.queue,
                    "args": job.args_json,
                    "kwargs": job.kwargs_json,
                    "priority": str(int(job.priority)),
                    "pool": job.pool,
                    "slots": str(int(job.pool_slots)),
                    "max": str(int(job.max_attempts)),
                    "timeout": "" if job.timeout is None else num(job.timeout),
                    "prefix": priority_rank(job.priority),
                    "blocked": bool(step.upstreams),
                    "name": step.name,
                    "rule": step.rule.value,
                    "res": "1" if step.results else "0",
                    "ups": ",".join(ids[u] for u in step.upstreams),
                    "downs": ",".join(downs[job.id]),
                    "upn": ",".join(step.upstreams),
                    "pend": str(len(step.upstreams)),
                }
            )
        body = {
            "id": run.id,
            "pipeline": run.pipeline,
            "key": run.key,
            "params": run.params_json,
            "steps": steps,
        }
        reply = rows(self._run("create_run", self._clock.now(), [json.dumps(body)]))
        if reply[0] == "unknown_pool":
            raise UnknownPoolError(unknown_pool(reply[1], self._pools_known()))
        return to_run(reply[1], created=reply[0] == "ok")

    def get_run(self, run_id: str) -> RunRecord | None:
        checks.check_text("run id", run_id)
        [view] = rows(self._run("runs", self._clock.now(), ["get", run_id]))
        return None if view is False else to_run(view)

    def note_run_ended(self, run_id: str, finished_at: float) -> bool:
        checks.check_text("run id", run_id)
        return int(self._run("note_run", self._clock.now(), [run_id, num(finished_at)])) == 1

    def list_runs(
        self, *, pipeline: str | None = None, limit: int = 100, offset: int = 0
    ) -> list[RunRecord]:
        checks.check_filters(None, None, pipeline, limit, offset)
        args = ["list", pipeline or "", str(offset), str(limit)]
        return [to_run(v) for v in rows(self._run("runs", self._clock.now(), args))]

    def _require_run(self, run_id: str) -> RunRecord:
        found = self.get_run(run_id)
        if found is None:
            raise JobNotFoundError(no_such_run(run_id))
        return found

    def retry_run(self, run_id: str) -> RunRecord:
        while True:  # the plan is made from a read; the function refuses a stale plan
            run = self._require_run(run_id)
            by_name = {s.name: s.job_id for s in run.steps}
            present = [s for s in run.steps if s.state is not None]
            plan = plan_retry(
                [
                    (s.job_id, s.state, s.rule, [by_name[u] for u in s.upstreams])
                    for s in present
                    if s.state is not None
                ]
            )
            args: list[str] = []
            states = {s.job_id: s.state for s in present}
            for job_id, action in plan.items():
                if action is RetryAction.KEEP:
                    continue
                state = states[job_id]
                assert state is not None
                args += [job_id, state.value, "wait" if action is RetryAction.WAIT else "run"]
            reply = rows(self._run("retry_run", self._clock.now(), [str(len(args) // 3), *args]))
            if reply[0] == "ok":
                return self._require_run(run_id)

    def cancel_run(self, run_id: str) -> RunRecord:
        """Each step is cancelled atomically (downstreams first), the run as a whole is not
        one step on Redis: a step that ends meanwhile is left as it ended."""
        run = self._require_run(run_id)
        for step in reversed(run.steps):
            if step.state in LIVE:
                try:
                    self.cancel(step.job_id)
                except InvalidTransitionError:  # it ended meanwhile
                    continue
        return self._require_run(run_id)
