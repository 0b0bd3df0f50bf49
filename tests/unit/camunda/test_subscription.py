"""The client's pure part: a subscription, checked, with its filters and task name."""

from __future__ import annotations

import pytest

from faena.camunda.client.subscription import Subscription, subscription
from faena.camunda.client.task import ExternalTask
from faena.errors import ConfigError


def handler(task: ExternalTask) -> None:
    return None


def sub(**options: object) -> Subscription:
    settings: dict[str, object] = dict(
        lock_ms=1000, variables=None, retries=3, backoff_base=1.0, backoff_cap=300.0,
        retry_on=None, business_key=None, process_definition_key=None, process_variables=None,
    )  # fmt: skip
    settings.update(options)
    return subscription("orders", handler, **settings)  # type: ignore[arg-type]


def test_a_bad_retry_policy_names_the_topic() -> None:
    with pytest.raises(ConfigError, match="subscription 'orders'"):
        sub(retries=-1)


def test_filters_and_the_task_name() -> None:
    s = sub(business_key="b1", process_variables={"region": "eu"})
    topic = s.topic_json()
    assert topic["businessKey"] == "b1" and topic["processVariables"] == {"region": "eu"}
    assert s.task_name.endswith("test_subscription.handler")
