"""The pure part of the Camunda client (:mod:`faena.camunda.client.client`): a subscription (a
topic, its handler, lock and retry policy), a task it is running, and what a failed handler's
task is reported with. No HTTP and no threads here."""

from __future__ import annotations

import random
import traceback
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from faena.camunda.client.task import ExternalTask
from faena.camunda.errors import ERROR_MESSAGE_LIMIT
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


@dataclass
class Running:
    """A task a handler is running."""

    task: ExternalTask
    sub: Subscription
    started: float
    lost: bool = False
    released: bool = False


def attempt(running: Running) -> int:
    """Which attempt this is, from the retries the engine has left (1 when it set none)."""
    retries = running.task.retries
    if retries is None:
        return 1
    return max(running.sub.retry.max_attempts - retries + 1, 1)


@dataclass(frozen=True)
class Failure:
    """What a failed handler's task is reported with (Camunda's ``failure``)."""

    retries_left: int
    delay: float  # seconds before the engine offers the task again
    message: str
    details: str
    attempts_made: int


def failure(running: Running, exc: Exception, rng: random.Random) -> Failure:
    """The subscription's retry policy applied to ``exc``: an exception it does not retry
    leaves no retries (an incident); otherwise one fewer than the engine had, or the
    policy's count when the engine set none; the delay is the policy's backoff."""
    sub, task = running.sub, running.task
    if not isinstance(exc, sub.retry_on):
        left = 0
    elif task.retries is None:
        left = sub.retry.retries
    else:
        left = max(task.retries - 1, 0)
    made = attempt(running)
    delay = sub.retry.delay(made, rng) if left > 0 else 0.0
    text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    details = "".join(traceback.format_exception(exc))
    return Failure(left, delay, text[:ERROR_MESSAGE_LIMIT], details, made)
