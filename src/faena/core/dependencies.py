"""Pipeline rules, pure: what a step waiting on its upstreams becomes, what a run's state is,
and what a run's retry does to each step.

Every backend applies these rules in the same atomic step as the upstream's end (memory under
its lock, SQLite and PostgreSQL in a trigger of the finishing statement, Redis in the Lua
function that ends the job); the SQL and Lua texts mirror :func:`decide`, and the contract
suite (``tests/contract/test_pipelines.py``) holds them to it.

A step that waits for its upstreams is a ``scheduled`` job whose ``run_at`` is
:data:`BLOCKED_AT` (no claim takes it: its time never comes). Releasing it sets ``run_at``
to now; a step whose rule can no longer be met ends ``cancelled`` with the error type
:data:`SKIPPED`. No job state is added: claims, counts and listings stay as they are.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from enum import StrEnum

from faena.core.states import TERMINAL, JobState

#: ``run_at`` of a step waiting for its upstreams: 9999-12-31T23:59:59Z, a time that never comes
BLOCKED_AT = 253402300799.0
#: the error type of a step ended because its trigger rule can no longer be met
SKIPPED = "Skipped"
#: its message (the rule is filled in)
SKIPPED_MESSAGE = "skipped: its trigger rule {rule} can no longer be met by its upstreams"
#: the keyword a step that takes its upstreams' results gets them in (step name -> result)
RESULTS_KEYWORD = "upstream"


class TriggerRule(StrEnum):
    #: every upstream succeeded (the default)
    ALL_SUCCESS = "all_success"
    #: every upstream ended, however (cleanup)
    ALL_DONE = "all_done"
    #: at least one upstream failed or was cancelled (alerting)
    ONE_FAILED = "one_failed"


class Decision(StrEnum):
    WAIT = "wait"
    RELEASE = "release"
    SKIP = "skip"  # the rule can no longer be met: the step ends cancelled


#: upstream states that count as a failure (a step skipped upstream counts as failed, as
#: Airflow's upstream_failed does)
FAILED_UPSTREAM = frozenset({JobState.DEAD, JobState.CANCELLED})


def decide(rule: TriggerRule, upstreams: Iterable[JobState]) -> Decision:
    """What a waiting step becomes, given its upstreams' states now."""
    states = list(upstreams)
    done = all(s in TERMINAL for s in states)
    failed = any(s in FAILED_UPSTREAM for s in states)
    if rule is TriggerRule.ALL_SUCCESS:
        if failed:
            return Decision.SKIP
        return Decision.RELEASE if done else Decision.WAIT
    if rule is TriggerRule.ALL_DONE:
        return Decision.RELEASE if done else Decision.WAIT
    if failed:
        return Decision.RELEASE
    return Decision.SKIP if done else Decision.WAIT


class RunState(StrEnum):
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


def run_state(steps: Sequence[tuple[JobState, str | None]]) -> RunState:
    """A run's state from its steps' (state, error type): running while a step is live;
    then failed if a step is dead, cancelled if a step was cancelled (not skipped), else
    succeeded: a skipped step (``Skipped``: its rule can no longer be met) follows from
    another step's end and does not decide the run by itself."""
    if any(s not in TERMINAL for s, _ in steps):
        return RunState.RUNNING
    if any(s is JobState.DEAD for s, _ in steps):
        return RunState.FAILED
    if any(s is JobState.CANCELLED and e != SKIPPED for s, e in steps):
        return RunState.CANCELLED
    return RunState.SUCCEEDED


class RetryAction(StrEnum):
    KEEP = "keep"  # left as it is
    WAIT = "wait"  # waits for its upstreams again (scheduled, BLOCKED_AT)
    RUN = "run"  # runs again at once (queued)


def plan_retry(
    steps: Sequence[tuple[str, JobState, TriggerRule, Sequence[str]]],
) -> dict[str, RetryAction]:
    """A run's retry (Airflow's "clear"): each dead or cancelled step runs again, steps that
    succeeded are kept. ``steps`` are (job id, state, rule, upstream job ids) in topological
    order (upstreams first). A step to run again waits if one of its upstreams runs again;
    else it runs at once if its rule holds, or is kept as it is if it cannot."""
    now: dict[str, JobState | None] = {}  # None: runs again (not ended)
    plan: dict[str, RetryAction] = {}
    for job_id, state, rule, ups in steps:
        if state not in FAILED_UPSTREAM:
            plan[job_id], now[job_id] = RetryAction.KEEP, state
            continue
        up_states = [now.get(u) for u in ups]
        if any(s is None for s in up_states):
            plan[job_id], now[job_id] = RetryAction.WAIT, None
            continue
        decision = decide(rule, [s for s in up_states if s is not None])
        if decision is Decision.RELEASE:
            plan[job_id], now[job_id] = RetryAction.RUN, None
        elif decision is Decision.WAIT:  # an upstream is still live
            plan[job_id], now[job_id] = RetryAction.WAIT, None
        else:
            plan[job_id], now[job_id] = RetryAction.KEEP, state
    return plan


def upstream_results(results: Mapping[str, str | None]) -> str:
    """The JSON object a step that takes results gets (step name -> result JSON text; a
    step name is an identifier, so it needs no escaping)."""
    parts = [f'"{name}":{"null" if text is None else text}' for name, text in results.items()]
    return "{" + ",".join(parts) + "}"


def with_results(kwargs_json: str, results_json: str) -> str:
    """``kwargs_json`` (a JSON object from :mod:`faena.core.payload`, with no
    :data:`RESULTS_KEYWORD` key) with the results added under that keyword."""
    head = '{"' + RESULTS_KEYWORD + '":' + results_json
    body = kwargs_json.strip()
    return head + "}" if body == "{}" else head + "," + body[1:]
