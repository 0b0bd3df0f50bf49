"""The pipeline rules, pure: trigger rules, a run's state, a run's retry plan, results."""

from __future__ import annotations

import json

import pytest

from faena.core.dependencies import (
    SKIPPED,
    Decision,
    RetryAction,
    RunState,
    TriggerRule,
    decide,
    plan_retry,
    run_state,
    upstream_results,
    with_results,
)
from faena.core.states import JobState

S, Q, R, F, D, C = (
    JobState.SUCCEEDED,
    JobState.QUEUED,
    JobState.RUNNING,
    JobState.FAILED,
    JobState.DEAD,
    JobState.CANCELLED,
)


@pytest.mark.parametrize(
    ("rule", "ups", "want"),
    [
        (TriggerRule.ALL_SUCCESS, [S, S], Decision.RELEASE),
        (TriggerRule.ALL_SUCCESS, [S, R], Decision.WAIT),
        (TriggerRule.ALL_SUCCESS, [S, F], Decision.WAIT),  # awaiting its retry: still live
        (TriggerRule.ALL_SUCCESS, [D, R], Decision.SKIP),  # at once, without the others
        (TriggerRule.ALL_SUCCESS, [C, S], Decision.SKIP),
        (TriggerRule.ALL_DONE, [D, C], Decision.RELEASE),
        (TriggerRule.ALL_DONE, [S, Q], Decision.WAIT),
        (TriggerRule.ONE_FAILED, [D, R], Decision.RELEASE),
        (TriggerRule.ONE_FAILED, [S, S], Decision.SKIP),
        (TriggerRule.ONE_FAILED, [S, R], Decision.WAIT),
        (TriggerRule.ALL_SUCCESS, [], Decision.RELEASE),
    ],
)
def test_decide(rule: TriggerRule, ups: list[JobState], want: Decision) -> None:
    assert decide(rule, ups) is want


def test_run_state() -> None:
    assert run_state([(S, None), (R, None)]) is RunState.RUNNING
    assert run_state([(S, None), (S, None)]) is RunState.SUCCEEDED
    assert run_state([(D, "ValueError"), (C, SKIPPED)]) is RunState.FAILED
    assert run_state([(S, None), (C, None)]) is RunState.CANCELLED
    assert run_state([(S, None), (C, SKIPPED)]) is RunState.SUCCEEDED  # one_failed not met
    assert run_state([(C, "ValueError")]) is RunState.CANCELLED  # cancelled after a failure


def test_plan_retry_keeps_succeeded_and_waits_behind_what_runs_again() -> None:
    a, b, c, d = "a", "b", "c", "d"
    plan = plan_retry(
        [
            (a, S, TriggerRule.ALL_SUCCESS, []),
            (b, D, TriggerRule.ALL_SUCCESS, [a]),
            (c, C, TriggerRule.ALL_SUCCESS, [b]),
            (d, C, TriggerRule.ONE_FAILED, [a]),  # skipped because nothing failed: kept
        ]
    )
    assert plan == {
        a: RetryAction.KEEP,
        b: RetryAction.RUN,
        c: RetryAction.WAIT,
        d: RetryAction.KEEP,
    }


def test_plan_retry_waits_for_a_live_upstream() -> None:
    plan = plan_retry(
        [("a", R, TriggerRule.ALL_SUCCESS, []), ("b", C, TriggerRule.ALL_SUCCESS, ["a"])]
    )
    assert plan["b"] is RetryAction.WAIT


def test_results_are_merged_into_the_keyword_arguments() -> None:
    up = upstream_results({"a": '{"rows": 3}', "b": None})
    assert json.loads(with_results("{}", up)) == {"upstream": {"a": {"rows": 3}, "b": None}}
    merged = json.loads(with_results('{"day": "2026-11-27"}', up))
    assert merged == {"upstream": {"a": {"rows": 3}, "b": None}, "day": "2026-11-27"}
