"""The client's pure part: subscriptions and what a failed handler is reported with."""

from __future__ import annotations

import random

import pytest

from faena.camunda.client.subscription import Running, attempt, failure, subscription
from faena.camunda.client.task import ExternalTask
from faena.errors import ConfigError


def handler(task: ExternalTask) -> None:
    return None


def running(engine_retries: int | None, **options: object) -> Running:
    settings: dict[str, object] = dict(
        lock_ms=1000, variables=None, retries=3, backoff_base=1.0, backoff_cap=300.0,
        retry_on=None, business_key=None, process_definition_key=None, process_variables=None,
    )  # fmt: skip
    settings.update(options)
    sub = subscription("orders", handler, **settings)  # type: ignore[arg-type]
    task = ExternalTask(
        id="t1", topic_name="orders", worker_id="w", variables={}, retries=engine_retries
    )
    return Running(task, sub, started=0.0)


def test_the_first_failure_takes_the_policy_s_retries_then_counts_down() -> None:
    rng = random.Random(1)
    first = failure(running(None), RuntimeError("boom"), rng)
    assert (first.retries_left, first.attempts_made) == (3, 1)
    assert 0 <= first.delay <= 1.0, "full jitter under the first backoff step"
    assert first.message == "RuntimeError: boom" and "RuntimeError: boom" in first.details
    later = failure(running(2), RuntimeError("boom"), rng)
    assert (later.retries_left, later.attempts_made) == (1, 3)
    last = failure(running(1), RuntimeError("boom"), rng)
    assert (last.retries_left, last.delay) == (0, 0.0), "no retries left: an incident, now"


def test_an_exception_the_subscription_does_not_retry_goes_to_an_incident() -> None:
    f = failure(running(None, retry_on=[TimeoutError]), ValueError("bad input"), random.Random())
    assert (f.retries_left, f.delay) == (0, 0.0)


def test_the_message_is_cut_where_camunda_cuts_it() -> None:
    f = failure(running(None), RuntimeError("x" * 2000), random.Random())
    assert len(f.message) == 666 and f.message.startswith("RuntimeError: xxx")


def test_attempts_count_from_the_retries_the_engine_has_left() -> None:
    assert attempt(running(None)) == 1
    assert attempt(running(3)) == 2  # retries=3: 4 attempts in all; 3 left: the 2nd
    assert attempt(running(1)) == 4


def test_a_bad_retry_policy_names_the_topic() -> None:
    with pytest.raises(ConfigError, match="subscription 'orders'"):
        running(None, retries=-1)


def test_filters_and_the_task_name() -> None:
    r = running(None, business_key="b1", process_variables={"region": "eu"})
    topic = r.sub.topic_json()
    assert topic["businessKey"] == "b1" and topic["processVariables"] == {"region": "eu"}
    assert r.sub.task_name.endswith("test_subscription.handler")
