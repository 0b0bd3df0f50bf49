"""Request bodies of the external-task endpoints, checked the way Camunda checks them.

Unknown fields are ignored and ``null`` means absent (Camunda's Jackson settings); a bad value
raises :class:`RestError` 400 with Camunda's wording where there is one.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any

from faena.camunda.errors import RestError, bad_request, shown_int
from faena.camunda.variables import VariableError, plain_map

MAX_ASYNC_RESPONSE_TIMEOUT_MS = 1_800_000  # Camunda's own limit, 30 minutes
#: lockDuration (fetchAndLock, lock), newDuration (extendLock), retryTimeout (failure): 30 days
MAX_DURATION_MS = 30 * 24 * 3600 * 1000
#: tasks one fetchAndLock may ask for
MAX_TASKS = 1000
#: retries of failure and PUT retries (faena's attempt budget is a 32-bit integer)
MAX_RETRIES = 1_000_000


def _object(body: Any) -> dict[str, Any]:
    if body is None:
        return {}
    if not isinstance(body, dict):
        raise bad_request(f"the request body must be a JSON object, got {type(body).__name__}")
    return body


def identifier(value: str, key: str) -> str:
    """A name that reaches the broker (worker id, topic): no NUL, which no store keeps."""
    if "\x00" in value:
        raise bad_request(f"{key} must not contain the NUL character (\\u0000), got {value!r}")
    return value


def worker_of(body: dict[str, Any]) -> str:
    """``workerId`` as a string (the Python client sends it raw: an int stays an int)."""
    worker = body.get("workerId")
    if worker is None:
        raise bad_request("workerId is null", "NullValueException")
    if isinstance(worker, bool) or not isinstance(worker, str | int | float):
        raise bad_request(f"workerId must be a string, got {worker!r}")
    return identifier(str(worker), "workerId")


def bounded(value: int, key: str, low: int, high: int) -> int:
    """``value`` if ``low <= value <= high``, else a 400 naming the field, value and limits."""
    if not low <= value <= high:
        raise bad_request(f"{key} must be between {low} and {high}, got {shown_int(value)}")
    return value


def _int(body: dict[str, Any], key: str, *, default: int | None = None) -> int | None:
    value = body.get(key)
    if value is None:
        return default
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            value = int(value)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise bad_request(f"{key} must be an integer, got {value!r}")
    return value


def _bool(body: dict[str, Any], key: str) -> bool:
    value = body.get(key)
    if value is None:
        return False
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    if not isinstance(value, bool):
        raise bad_request(f"{key} must be true or false, got {value!r}")
    return value


def _strings(body: dict[str, Any], key: str) -> list[str] | None:
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise bad_request(f"{key} must be an array of strings, got {value!r}")
    return list(value)


def _variables(body: dict[str, Any], key: str) -> dict[str, Any]:
    try:
        return plain_map(body.get(key), key)
    except VariableError as exc:
        raise bad_request(str(exc)) from None


def positive_duration(value: int | None, what: str, key: str) -> int:
    """A lock duration in ms: > 0 (Camunda's message) and at most :data:`MAX_DURATION_MS`."""
    if value is None or value <= 0:
        raise bad_request(f"{what} is not greater than 0: {value}")
    return bounded(value, key, 1, MAX_DURATION_MS)


# fetchAndLock ---------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class TopicRequest:
    name: str
    lock_ms: int
    variables: list[str] | None  # None: all
    business_key: str | None = None
    definition_keys: list[str] | None = None  # processDefinitionKey(In) and -Id(In): task
    process_variables: dict[str, Any] = field(default_factory=dict)
    tenant_ids: list[str] | None = None
    version_tag: str | None = None

    @property
    def filtered(self) -> bool:
        return bool(
            self.business_key is not None
            or self.definition_keys is not None
            or self.process_variables
            or self.tenant_ids is not None
            or self.version_tag is not None
        )


@dataclass(frozen=True, slots=True)
class FetchRequest:
    worker: str
    max_tasks: int
    topics: list[TopicRequest]
    async_timeout_ms: int | None


def _definition_keys(topic: dict[str, Any]) -> list[str] | None:
    keys: list[str] | None = None
    for single, many in (
        ("processDefinitionKey", "processDefinitionKeyIn"),
        ("processDefinitionId", "processDefinitionIdIn"),
    ):
        one = topic.get(single)
        listed = _strings(topic, many)
        for group in ([one] if isinstance(one, str) else None, listed):
            if group is not None:
                keys = group if keys is None else [k for k in keys if k in group]
    return keys


def _topic(raw: Any) -> TopicRequest:
    topic = _object(raw)
    name = topic.get("topicName")
    if not isinstance(name, str) or not name:
        raise bad_request("topicName is null", "NullValueException")
    identifier(name, "topicName")
    lock_ms = positive_duration(_int(topic, "lockDuration"), "lockTime", "lockDuration")
    pvars = topic.get("processVariables") or {}
    if not isinstance(pvars, dict):
        raise bad_request("processVariables must be an object of name -> value")
    tenants = _strings(topic, "tenantIdIn")
    if _bool(topic, "withoutTenantId"):
        tenants = None
    tag = topic.get("processDefinitionVersionTag")
    key = topic.get("businessKey")
    return TopicRequest(
        name=name,
        lock_ms=lock_ms,
        variables=_strings(topic, "variables"),
        business_key=key if isinstance(key, str) else None,
        definition_keys=_definition_keys(topic),
        process_variables=dict(pvars),
        tenant_ids=tenants,
        version_tag=tag if isinstance(tag, str) else None,
    )


def _check_sorting(body: dict[str, Any]) -> None:
    sorting = body.get("sorting")
    if sorting is None:
        return
    if not isinstance(sorting, list):
        raise bad_request("sorting must be an array of {sortBy, sortOrder}")
    for item in sorting:
        entry = _object(item)
        by, order = entry.get("sortBy"), entry.get("sortOrder")
        if by != "createTime":
            raise bad_request(f"Cannot set query sortBy parameter to value {by}")
        if order not in ("asc", "desc"):
            raise bad_request(f"Cannot set query sortOrder parameter to value {order}")


def fetch_request(raw: Any) -> FetchRequest:
    body = _object(raw)
    worker = worker_of(body)
    max_tasks = _int(body, "maxTasks")
    if max_tasks is None or max_tasks < 0:
        raise bad_request(f"maxTasks must be a number >= 0, got {body.get('maxTasks')!r}")
    bounded(max_tasks, "maxTasks", 0, MAX_TASKS)
    timeout = _int(body, "asyncResponseTimeout")
    if timeout is not None and timeout > MAX_ASYNC_RESPONSE_TIMEOUT_MS:
        raise bad_request(
            "The asynchronous response timeout cannot be set to a value greater than "
            f"{MAX_ASYNC_RESPONSE_TIMEOUT_MS} milliseconds (asyncResponseTimeout is "
            f"{shown_int(timeout)})"
        )
    if timeout is not None and timeout < 0:
        raise bad_request(f"asyncResponseTimeout must be >= 0, got {timeout}")
    _check_sorting(body)
    topics_raw = body.get("topics") or []
    if not isinstance(topics_raw, list):
        raise bad_request("topics must be an array of topic objects")
    return FetchRequest(worker, max_tasks, [_topic(t) for t in topics_raw], timeout)


# task actions ---------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Completion:
    worker: str
    variables: dict[str, Any]


def completion(raw: Any) -> Completion:
    body = _object(raw)
    worker = worker_of(body)
    merged = _variables(body, "variables")
    merged.update(_variables(body, "localVariables"))
    return Completion(worker, merged)


@dataclass(frozen=True, slots=True)
class Failure:
    worker: str
    message: str | None
    details: str | None
    retries: int
    retry_timeout_ms: int


def _text(body: dict[str, Any], key: str) -> str | None:
    value = body.get(key)
    if value is None:
        return None
    return value if isinstance(value, str) else str(value)


def failure(raw: Any) -> Failure:
    body = _object(raw)
    worker = worker_of(body)
    retries = _int(body, "retries", default=0)  # a Java primitive: missing means 0
    timeout = _int(body, "retryTimeout", default=0)
    assert retries is not None and timeout is not None
    if retries < 0:
        raise bad_request(f"retries is not greater than or equal to 0: {retries}")
    if timeout < 0:
        raise bad_request(f"retryTimeout is not greater than or equal to 0: {timeout}")
    bounded(retries, "retries", 0, MAX_RETRIES)
    bounded(timeout, "retryTimeout", 0, MAX_DURATION_MS)
    _variables(body, "variables")  # checked; faena keeps no variables of a failed attempt
    _variables(body, "localVariables")
    return Failure(
        worker, _text(body, "errorMessage"), _text(body, "errorDetails"), retries, timeout
    )


@dataclass(frozen=True, slots=True)
class BpmnError:
    worker: str
    code: str
    message: str | None
    variables: dict[str, Any]


def bpmn_error(raw: Any) -> BpmnError:
    body = _object(raw)
    worker = worker_of(body)
    code = _text(body, "errorCode")
    if code is None:
        raise bad_request("errorCode is null", "NullValueException")
    return BpmnError(worker, code, _text(body, "errorMessage"), _variables(body, "variables"))


def extend_lock(raw: Any) -> tuple[str, int]:
    body = _object(raw)
    worker = worker_of(body)
    return worker, positive_duration(_int(body, "newDuration"), "lockTime", "newDuration")


def lock(raw: Any) -> tuple[str, int]:
    body = _object(raw)
    worker = worker_of(body)
    return worker, positive_duration(_int(body, "lockDuration"), "lockTime", "lockDuration")


def retries_value(raw: Any) -> int:
    body = _object(raw)
    retries = _int(body, "retries")
    if retries is None:
        raise bad_request("The number of retries cannot be null.")
    if retries < 0:
        raise RestError(400, "The number of retries cannot be negative", "BadUserRequestException")
    return bounded(retries, "retries", 0, MAX_RETRIES)
