"""A subscription of the Camunda client (:mod:`faena.camunda.client.client`): a topic, its
handler, lock and retry policy. What a failed handler's task is reported with is the worker
runtime's rule (:func:`faena.core.outcomes.decide`, through :mod:`faena.camunda.client.source`).
No HTTP and no threads here."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from faena.camunda.client.task import ExternalTask
from faena.core.retry import RetryPolicy
from faena.errors import ConfigError

Handler = Callable[[ExternalTask], Mapping[str, Any] | None]


@dataclass(frozen=True)
class Subscription:
    topic: str
    handler: Handler
    lock_ms: int
    variables: list[str] | None
    retry: RetryPolicy
    retry_on: tuple[type[BaseException], ...]
    task_name: str
    filters: dict[str, Any] = field(default_factory=dict)

    def topic_json(self) -> dict[str, Any]:
        topic: dict[str, Any] = {
            "topicName": self.topic,
            "lockDuration": self.lock_ms,
            "localVariables": False,
            "deserializeValues": False,
        }
        if self.variables is not None:
            topic["variables"] = self.variables
        topic.update(self.filters)
        return topic


def to_ms(seconds: float, what: str) -> int:
    if seconds <= 0:
        raise ConfigError(f"{what} must be > 0 seconds, got {seconds}")
    return max(int(seconds * 1000), 1)


def subscription(
    topic: str,
    handler: Handler,
    *,
    lock_ms: int,
    variables: Sequence[str] | None,
    retries: int,
    backoff_base: float,
    backoff_cap: float,
    retry_on: Iterable[type[BaseException]] | None,
    business_key: str | None,
    process_definition_key: str | None,
    process_variables: Mapping[str, Any] | None,
) -> Subscription:
    """A subscription from :meth:`ExternalTaskClient.subscribe`'s arguments (checked)."""
    filters: dict[str, Any] = {}
    if business_key is not None:
        filters["businessKey"] = business_key
    if process_definition_key is not None:
        filters["processDefinitionKey"] = process_definition_key
    if process_variables:
        filters["processVariables"] = dict(process_variables)
    try:
        policy = RetryPolicy(retries=retries, backoff_base=backoff_base, backoff_cap=backoff_cap)
    except ValueError as exc:
        raise ConfigError(f"subscription {topic!r}: {exc}") from None
    name = getattr(handler, "__qualname__", None) or type(handler).__name__
    module = getattr(handler, "__module__", None)
    return Subscription(
        topic=topic,
        handler=handler,
        lock_ms=lock_ms,
        variables=list(variables) if variables is not None else None,
        retry=policy,
        retry_on=tuple(retry_on) if retry_on is not None else (Exception,),
        task_name=f"{module}.{name}" if module else name,
        filters=filters,
    )
