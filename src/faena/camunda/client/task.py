"""What a handler receives (:class:`ExternalTask`) and what it raises for a business error
(:class:`BpmnError`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from faena.camunda.variables import from_typed, parse_date

_MISSING: Any = object()


class BpmnError(Exception):
    """Raise in a handler to end the task with a BPMN error (no retry, no incident)::

    raise BpmnError("CREDIT_REFUSED", "score below 500", {"score": 420})

    Camunda routes it to a matching error boundary event; faena's own server keeps the job
    ``dead`` with ``error_type`` ``BpmnError`` and the code in its result.
    """

    def __init__(
        self,
        error_code: str,
        message: str | None = None,
        variables: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(f"{error_code}: {message}" if message else error_code)
        self.error_code = error_code
        self.error_message = message
        self.variables = dict(variables or {})


@dataclass(frozen=True)
class ExternalTask:
    """One fetched and locked task. ``variables`` are decoded Python values (``Json`` is
    parsed, ``Date`` is a ``datetime``, ``Bytes`` is ``bytes``); ``raw`` is the engine's JSON."""

    id: str
    topic_name: str
    worker_id: str
    variables: dict[str, Any]
    retries: int | None = None
    business_key: str | None = None
    process_instance_id: str | None = None
    process_definition_key: str | None = None
    activity_id: str | None = None
    tenant_id: str | None = None
    priority: int = 0
    error_message: str | None = None
    lock_expiration_time: datetime | None = None
    extension_properties: dict[str, str] = field(default_factory=dict)
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    def get_variable(self, name: str, default: Any = _MISSING) -> Any:
        """A variable's value; ``KeyError`` naming the ones there are if it is missing and no
        default is given."""
        if name in self.variables:
            return self.variables[name]
        if default is _MISSING:
            known = ", ".join(sorted(self.variables)) or "none"
            raise KeyError(
                f"task {self.id} of topic {self.topic_name!r} has no variable {name!r} "
                f"(it has: {known}); fetch it by listing it in subscribe(variables=[...])"
            )
        return default

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ExternalTask:
        raw_vars = data.get("variables") or {}
        expiry = data.get("lockExpirationTime")
        return cls(
            id=str(data["id"]),
            topic_name=str(data["topicName"]),
            worker_id=str(data.get("workerId") or ""),
            variables={name: from_typed(name, var) for name, var in raw_vars.items()},
            retries=data.get("retries"),
            business_key=data.get("businessKey"),
            process_instance_id=data.get("processInstanceId"),
            process_definition_key=data.get("processDefinitionKey"),
            activity_id=data.get("activityId"),
            tenant_id=data.get("tenantId"),
            priority=int(data.get("priority") or 0),
            error_message=data.get("errorMessage"),
            lock_expiration_time=parse_date(expiry) if isinstance(expiry, str) else None,
            extension_properties=dict(data.get("extensionProperties") or {}),
            raw=dict(data),
        )
