"""A faena job seen as a Camunda external task: the mapping, in one place.

* topic = queue; variables = the job's keyword arguments; ``workerId`` = the claim's worker;
  ``lockExpirationTime`` = the lease deadline (or, while a failed job waits for its
  ``retryTimeout``, the time it becomes fetchable again, as Camunda shows it).
* ``retries`` is ``null`` until an attempt failed, then the attempts left:
  ``max_attempts - tries`` (a running attempt is not counted as used yet).
* BPMN has no place here, so the process fields are stable synthetic ids: process instance and
  execution = the job id, definition key = the task name, activity = the topic, business key =
  the idempotency key.
* A job is an external task while it is pending, running, or ``dead`` (an incident: retries
  0). Succeeded and cancelled jobs, and jobs ended by a BPMN error, are gone for Camunda
  (``404``) but stay in faena's own API.
"""

from __future__ import annotations

from typing import Any

from faena.camunda.errors import ERROR_MESSAGE_LIMIT
from faena.camunda.variables import VariableError, format_date, to_typed
from faena.core import payload
from faena.core.job import Job
from faena.core.states import PENDING, JobState

#: ``error_type`` of a job ended by ``bpmnError``; its result holds the code (docs/camunda.md)
BPMN_ERROR = "BpmnError"
#: ``error_type`` of an attempt failed through ``failure``
FAILURE = "ExternalTaskFailure"


def is_external_task(job: Job) -> bool:
    if job.state in PENDING or job.state is JobState.RUNNING:
        return True
    return job.state is JobState.DEAD and (job.error is None or job.error.type != BPMN_ERROR)


def retries(job: Job) -> int | None:
    if job.error is None and job.state is not JobState.DEAD:
        return None
    if job.state is JobState.DEAD:
        return 0
    used = job.tries - 1 if job.state is JobState.RUNNING else job.tries
    return max(job.max_attempts - used, 0)


def worker_id(job: Job) -> str | None:
    return job.worker if job.state in (JobState.RUNNING, JobState.DEAD) else None


def lock_expiration(job: Job, now: float) -> float | None:
    if job.state is JobState.RUNNING:
        return job.lease_expires_at
    if job.state is JobState.FAILED and job.run_at > now:
        return job.run_at
    return None


def locked(job: Job, now: float) -> bool:
    until = lock_expiration(job, now)
    return until is not None and until > now


def error_message(job: Job) -> str | None:
    if job.error is None:
        return None
    return job.error.message[:ERROR_MESSAGE_LIMIT]


def error_details(job: Job) -> str | None:
    if job.error is None or not job.error.traceback:
        return None
    return job.error.traceback


def _date(when: float | None) -> str | None:
    return None if when is None else format_date(when)


def dto(job: Job, now: float) -> dict[str, Any]:
    """``ExternalTaskDto`` (GET and the queries): no variables, no error details."""
    return {
        "activityId": job.queue,
        "activityInstanceId": f"{job.queue}:{job.id}",
        "errorMessage": error_message(job),
        "executionId": job.id,
        "id": job.id,
        "lockExpirationTime": _date(lock_expiration(job, now)),
        "createTime": _date(job.enqueued_at),
        "processDefinitionId": job.task,
        "processDefinitionKey": job.task,
        "processDefinitionVersionTag": None,
        "processInstanceId": job.id,
        "tenantId": None,
        "retries": retries(job),
        "suspended": False,
        "workerId": worker_id(job),
        "topicName": job.queue,
        "priority": job.priority,
        "businessKey": job.idempotency_key,
    }


def variables(job: Job, names: list[str] | None) -> dict[str, Any]:
    """The job's keyword arguments as typed variables (``names`` None: all of them)."""
    kwargs = job.kwargs
    wanted = kwargs if names is None else {n: kwargs[n] for n in names if n in kwargs}
    return {name: _typed(value) for name, value in wanted.items()}


def _typed(value: Any) -> dict[str, Any]:
    """A stored value as a typed variable; one no Camunda type holds (an integer past 64
    bits, which faena's JSON payloads allow) is sent as ``Json``, its exact JSON text."""
    try:
        return to_typed(value)
    except VariableError:
        return {"type": "Json", "value": payload.encode("variable", value), "valueInfo": {}}


def locked_dto(job: Job, now: float, names: list[str] | None) -> dict[str, Any]:
    """``LockedExternalTaskDto`` (fetchAndLock): ``variables`` and ``extensionProperties``
    are always objects, never null (the JS client crashes on null)."""
    out = dto(job, now)
    out["errorDetails"] = error_details(job)
    out["variables"] = variables(job, names)
    out["extensionProperties"] = {}
    return out
