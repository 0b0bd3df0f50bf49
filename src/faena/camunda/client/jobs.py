"""A fetched Camunda task as a job of the worker runtime, and the runtime's ends of it as
Camunda's: pure mapping, no HTTP (the calls are :mod:`faena.camunda.client.source`'s)."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from faena.camunda.client.subscription import Subscription
from faena.camunda.client.task import BpmnError, ExternalTask
from faena.camunda.errors import ERROR_MESSAGE_LIMIT
from faena.camunda.variables import to_typed_map
from faena.core.job import ErrorInfo, Job
from faena.core.states import JobState

#: the key of a handler's result that holds the typed output variables of ``complete``
VARIABLES_KEY = "variables"


def job_of(data: Mapping[str, Any], sub: Subscription, now: float) -> Job:
    """A fetched task as the job the runtime runs.

    ``tries`` (and ``attempt``, which the events show) is which attempt this is, from the
    retries the engine has left (1 when it set none); ``max_attempts`` leaves the retries
    Camunda's rule gives: one fewer than the engine had, or the subscription's count the
    first time. The engine fences the task by ``workerId``, not by attempt."""
    retries = data.get("retries")
    if not isinstance(retries, int) or isinstance(retries, bool):
        tries, left = 1, sub.retry.retries
    else:
        tries = max(sub.retry.max_attempts - retries + 1, 1)
        left = max(retries - 1, 0)
    return Job(
        id=str(data["id"]),
        task=sub.task_name,
        queue=sub.topic,
        args_json=json.dumps([dict(data)]),
        kwargs_json="{}",
        state=JobState.RUNNING,
        priority=int(data.get("priority") or 0),
        pool="default",
        pool_slots=1,
        attempt=tries,
        tries=tries,
        max_attempts=tries + left,
        timeout=None,
        idempotency_key=None,
        enqueued_at=now,
        run_at=now,
        started_at=now,
        lease_expires_at=now + sub.lock_ms / 1000,
        worker=str(data.get("workerId") or "") or None,
    )


class BpmnErrorRaised(BaseException):
    """A handler raised :class:`BpmnError`: the attempt ends, never retried (a
    ``BaseException``, so no ``retry_on`` matches it), and :meth:`CamundaSource.finish`
    sends ``bpmnError`` with what :func:`task_function` kept for the task."""


def task_function(
    sub: Subscription, bpmn_errors: dict[str, dict[str, Any]]
) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """The function the runtime runs for a task of ``sub``: its one argument the task's JSON
    (:func:`job_of`), its result the handler's output as typed variables, which
    :meth:`CamundaSource.finish` sends with ``complete``. A :class:`BpmnError` is kept in
    ``bpmn_errors`` (by task id) and ends the attempt as :class:`BpmnErrorRaised`; any other
    exception is a failure under the runtime's rule (``retry_on`` included)."""

    def run(raw: dict[str, Any]) -> dict[str, Any]:
        task = ExternalTask.from_json(raw)
        try:
            output = sub.handler(task)
        except BpmnError as err:
            bpmn_errors[task.id] = {
                "code": err.error_code,
                "message": err.error_message,
                VARIABLES_KEY: to_typed_map(err.variables),
            }
            raise BpmnErrorRaised(str(err)) from None
        if output is not None and not isinstance(output, Mapping):
            raise TypeError(
                f"handler {sub.task_name} returned {type(output).__name__}; return a dict of "
                f"output variables or None"
            )
        return {VARIABLES_KEY: to_typed_map(output or {})}

    run.__name__ = run.__qualname__ = sub.task_name
    return run


def failure_message(error: ErrorInfo | None) -> str:
    """Camunda's ``errorMessage`` of a failed attempt: ``Type: message``, cut where it cuts."""
    if error is None:
        return "failed"
    text = f"{error.type}: {error.message}" if error.message else error.type
    return text[:ERROR_MESSAGE_LIMIT]
