"""A faena job seen as a Zeebe job: the mapping, in one place (pure).

* job type = queue; job key = the job's key in the store (:meth:`Broker.job_keys`, its
  enqueue sequence): an int64 that survives restarts and is the same from every replica.
* variables = the job's keyword arguments (a JSON object); ``fetchVariable`` picks some.
* ``retries`` = the attempts left counting the one just activated:
  ``max_attempts - tries + 1``; ``deadline`` = the lease's end in epoch milliseconds.
* No BPMN: the process fields are stable synthetic values: the process instance, element
  instance and definition keys are the job key, ``bpmnProcessId`` and ``elementId`` the task
  name, the definition version 1, the tenant ``<default>``, no custom headers.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from faena.core.job import Job
from faena.core.states import PENDING, JobState

#: ``error_type`` of an attempt failed through ``FailJob``
FAILURE = "ZeebeJobFailure"
#: ``error_type`` of a job ended by ``ThrowError`` (as a Camunda 7 BPMN error is)
BPMN_ERROR = "BpmnError"
TENANT = "<default>"


def retries(job: Job) -> int:
    """What Zeebe calls retries: the attempts left, the one running included."""
    used = job.tries - 1 if job.state is JobState.RUNNING else job.tries
    return max(job.max_attempts - used, 0)


def variables(job: Job, names: Sequence[str]) -> str:
    """The job's keyword arguments as a JSON object (only ``names``, when given)."""
    kwargs = json.loads(job.kwargs_json)
    if not isinstance(kwargs, dict):
        kwargs = {}
    if names:
        kwargs = {n: kwargs[n] for n in names if n in kwargs}
    return json.dumps(kwargs, separators=(",", ":"), ensure_ascii=False)


def activated(job: Job, key: int, names: Sequence[str]) -> dict[str, Any]:
    """The fields of a ``gateway_protocol.ActivatedJob`` for a job just claimed."""
    deadline = job.lease_expires_at or 0.0
    return {
        "key": key,
        "type": job.queue,
        "processInstanceKey": key,
        "bpmnProcessId": job.task,
        "processDefinitionVersion": 1,
        "processDefinitionKey": key,
        "elementId": job.task,
        "elementInstanceKey": key,
        "customHeaders": "{}",
        "worker": job.worker or "",
        "retries": retries(job),
        "deadline": int(deadline * 1000),
        "variables": variables(job, names),
        "tenantId": TENANT,
    }


def state_problem(job: Job, key: int, verb: str, now: float) -> tuple[str, str] | None:
    """Why ``verb`` cannot act on the job now, as (``NOT_FOUND`` or ``FAILED_PRECONDITION``,
    Zeebe's message); ``None`` if the job is activated (running with a live lease)."""
    if job.state is JobState.RUNNING:
        if job.lease_expires_at is not None and job.lease_expires_at <= now:
            return (
                "FAILED_PRECONDITION",
                f"Expected to {verb} job with key '{key}', but its timeout passed: it is "
                f"activatable again (activate it again to work it)",
            )
        return None
    if job.state in PENDING:
        return (
            "FAILED_PRECONDITION",
            f"Expected to {verb} job with key '{key}', but it is in state "
            f"'{'FAILED' if job.state is JobState.FAILED else 'ACTIVATABLE'}'",
        )
    if job.state is JobState.DEAD and (job.error is None or job.error.type != BPMN_ERROR):
        return (
            "FAILED_PRECONDITION",
            f"Expected to {verb} job with key '{key}', but it is in state 'FAILED' with no "
            f"retries left (an incident): give it retries with UpdateJobRetries first",
        )
    return (
        "NOT_FOUND",
        f"Expected to {verb} job with key '{key}', but no such job was found "
        f"(it ended: {job.state.value})",
    )
