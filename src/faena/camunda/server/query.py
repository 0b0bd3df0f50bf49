"""``GET/POST /external-task`` and ``/count``: Camunda's query criteria over the task view.

Criteria come as query parameters (strings, comma lists) or as a JSON body (arrays, JSON
booleans); both are read into one :class:`TaskQuery`, which filters the ``ExternalTaskDto``
of each job, so the filters see exactly what the client sees.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from faena.camunda.errors import bad_request, shown_int
from faena.camunda.variables import VariableError, parse_date
from faena.core.job import Job

SORT_KEYS = {
    "id": "id",
    "lockExpirationTime": "lockExpirationTime",
    "processInstanceId": "processInstanceId",
    "processDefinitionId": "processDefinitionId",
    "processDefinitionKey": "processDefinitionKey",
    "taskPriority": "priority",
    "tenantId": "tenantId",
    "createTime": "createTime",
}
#: (criterion, DTO field) pairs compared for equality / membership
EQUALS = {
    "externalTaskId": "id",
    "topicName": "topicName",
    "workerId": "workerId",
    "activityId": "activityId",
    "executionId": "executionId",
    "processInstanceId": "processInstanceId",
    "processDefinitionId": "processDefinitionId",
    "processDefinitionKey": "processDefinitionKey",
    "processDefinitionName": "processDefinitionKey",
}
MEMBER = {
    "externalTaskIdIn": "id",
    "activityIdIn": "activityId",
    "processInstanceIdIn": "processInstanceId",
    "processDefinitionKeyIn": "processDefinitionKey",
    "tenantIdIn": "tenantId",
}
FLAGS = ("locked", "notLocked", "withRetriesLeft", "noRetriesLeft", "active", "suspended")
_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "eq": operator.eq,
    "neq": operator.ne,
    "gt": operator.gt,
    "gteq": operator.ge,
    "lt": operator.lt,
    "lteq": operator.le,
}


@dataclass
class TaskQuery:
    equals: dict[str, str | None] = field(default_factory=dict)
    members: dict[str, list[str]] = field(default_factory=dict)
    flags: set[str] = field(default_factory=set)
    name_like: str | None = None
    lock_after: float | None = None
    lock_before: float | None = None
    priority_min: int | None = None
    priority_max: int | None = None
    variables: list[tuple[str, str, Any]] = field(default_factory=list)
    sort: list[tuple[str, bool]] = field(default_factory=list)  # (DTO field, descending)
    first: int = 0
    max_results: int | None = None

    def matches(self, job: Job, dto: Mapping[str, Any], now: float) -> bool:
        return (
            all(dto[f] == v for f, v in self.equals.items())
            and all(dto[f] in vs for f, vs in self.members.items())
            and all(_flag(name, dto, now) for name in self.flags)
            and (self.name_like is None or _like(str(dto["processDefinitionKey"]), self.name_like))
            and _lock_window(dto, self.lock_after, self.lock_before)
            and (self.priority_min is None or dto["priority"] >= self.priority_min)
            and (self.priority_max is None or dto["priority"] <= self.priority_max)
            and all(_variable_matches(job, *cond) for cond in self.variables)
        )

    def by_topic_alone(self) -> bool:
        """Whether ``topicName`` is the only criterion, if any (paging and sorting aside)."""
        return not (
            self.members
            or self.flags
            or self.variables
            or set(self.equals) - {"topicName"}
            or self.name_like is not None
            or self.lock_after is not None
            or self.lock_before is not None
            or self.priority_min is not None
            or self.priority_max is not None
        )

    def order(self, dtos: list[dict[str, Any]]) -> list[dict[str, Any]]:
        for key, desc in reversed(self.sort):
            dtos.sort(key=_sort_key(key), reverse=desc)
        end = None if self.max_results is None else self.first + self.max_results
        return dtos[self.first : end]


def _sort_key(key: str) -> Callable[[dict[str, Any]], tuple[bool, str]]:
    def of(dto: dict[str, Any]) -> tuple[bool, str]:
        value = dto[key]
        text = f"{value + 2**63:020d}" if isinstance(value, int) else str(value or "")
        return (value is None, text)

    return of


def _flag(name: str, dto: Mapping[str, Any], now: float) -> bool:
    expiry = dto["lockExpirationTime"]
    is_locked = expiry is not None and parse_date(expiry).timestamp() > now
    retries = dto["retries"]
    flags: dict[str, bool] = {
        "locked": is_locked,
        "notLocked": not is_locked,
        "withRetriesLeft": retries is None or retries > 0,
        "noRetriesLeft": retries == 0,
        "active": not dto["suspended"],
        "suspended": bool(dto["suspended"]),
    }
    return flags[name]


def _like(value: str, pattern: str) -> bool:
    import fnmatch

    return fnmatch.fnmatchcase(value, pattern.replace("%", "*").replace("_", "?"))


def _lock_window(dto: Mapping[str, Any], after: float | None, before: float | None) -> bool:
    if after is None and before is None:
        return True
    expiry = dto["lockExpirationTime"]
    if expiry is None:
        return False
    when = parse_date(expiry).timestamp()
    return (after is None or when > after) and (before is None or when < before)


def _variable_matches(job: Job, name: str, op: str, value: Any) -> bool:
    kwargs = job.kwargs
    if name not in kwargs:
        return False
    actual = kwargs[name]
    if op == "like":
        return isinstance(actual, str) and _like(actual, str(value))
    if isinstance(value, str) and not isinstance(actual, str):
        value = _coerce(value)
    try:
        return bool(_OPS[op](actual, value))
    except TypeError:
        return False


def _coerce(text: str) -> Any:
    for convert in (int, float):
        try:
            return convert(text)
        except ValueError:
            pass
    return {"true": True, "false": False, "null": None}.get(text, text)


# reading criteria -------------------------------------------------------------------------
def _as_list(value: Any, key: str) -> list[str]:
    if isinstance(value, str):
        return [_text(v, key) for v in value.split(",") if v]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return [_text(v, key) for v in value]
    raise bad_request(f"{key} must be a list of strings, got {value!r}")


def _as_bool(value: Any, key: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise bad_request(f"Cannot set query parameter '{key}' to value '{value}'")


#: Java's int and long, the types of Camunda's paging and priority parameters
INT_MAX = 2**31 - 1
LONG_MIN, LONG_MAX = -(2**63), 2**63 - 1


def _as_int(value: Any, key: str, low: int = LONG_MIN, high: int = LONG_MAX) -> int:
    try:
        if isinstance(value, bool):
            raise ValueError
        number = int(value)
    except (TypeError, ValueError, OverflowError):
        shown = str(value)[:40]
        raise bad_request(f"Cannot set query parameter '{key}' to value '{shown}'") from None
    if not low <= number <= high:
        raise bad_request(
            f"Cannot set query parameter '{key}' to value '{shown_int(number)}': it must be "
            f"between "
            f"{low} and {high}"
        )
    return number


def _text(value: Any, key: str) -> str:
    text = str(value)
    if "\x00" in text:
        raise bad_request(f"{key} must not contain the NUL character (\\u0000), got {text!r}")
    return text


def _as_date(value: Any, key: str) -> float:
    try:
        return parse_date(str(value)).timestamp()
    except VariableError:
        raise bad_request(f"Cannot set query parameter '{key}' to value '{value}'") from None


def _process_variables(value: Any) -> list[tuple[str, str, Any]]:
    out: list[tuple[str, str, Any]] = []
    if isinstance(value, str):
        for item in (v for v in value.split(",") if v):
            parts = item.split("_")
            if len(parts) < 3 or parts[-2] not in (*_OPS, "like"):
                raise bad_request(f"processVariables item {item!r} must be name_operator_value")
            out.append(("_".join(parts[:-2]), parts[-2], parts[-1]))
        return out
    if not isinstance(value, list):
        raise bad_request("processVariables must be a list of {name, operator, value}")
    for item in value:
        if not isinstance(item, dict) or item.get("operator") not in (*_OPS, "like"):
            raise bad_request(f"invalid processVariables entry {item!r}")
        out.append((str(item.get("name")), str(item["operator"]), item.get("value")))
    return out


def _sorting(params: Mapping[str, Any]) -> list[tuple[str, bool]]:
    pairs: list[tuple[Any, Any]] = []
    if "sorting" in params and params["sorting"] is not None:
        raw = params["sorting"]
        if not isinstance(raw, list):
            raise bad_request("sorting must be an array of {sortBy, sortOrder}")
        pairs = [(s.get("sortBy"), s.get("sortOrder")) for s in raw if isinstance(s, dict)]
    by, order = params.get("sortBy"), params.get("sortOrder")
    if (by is None) != (order is None):
        raise bad_request(
            "Only a single sorting parameter specified. sortBy and sortOrder required"
        )
    if by is not None:
        pairs.append((by, order))
    out = []
    for by, order in pairs:
        if by not in SORT_KEYS:
            raise bad_request(f"Cannot set query sortBy parameter to value {by}")
        if order not in ("asc", "desc"):
            raise bad_request(f"Cannot set query sortOrder parameter to value {order}")
        out.append((SORT_KEYS[by], order == "desc"))
    return out


_SCALARS: dict[str, Callable[[TaskQuery, Any, str], None]] = {
    "processDefinitionNameLike": lambda q, v, k: setattr(q, "name_like", str(v)),
    "lockExpirationAfter": lambda q, v, k: setattr(q, "lock_after", _as_date(v, k)),
    "lockExpirationBefore": lambda q, v, k: setattr(q, "lock_before", _as_date(v, k)),
    "priorityHigherThanOrEquals": lambda q, v, k: setattr(q, "priority_min", _as_int(v, k)),
    "priorityLowerThanOrEquals": lambda q, v, k: setattr(q, "priority_max", _as_int(v, k)),
    "processVariables": lambda q, v, k: setattr(q, "variables", _process_variables(v)),
}
_PAGING: dict[str, Callable[[TaskQuery, Any, str], None]] = {
    "firstResult": lambda q, v, k: setattr(q, "first", max(_as_int(v, k, high=INT_MAX), 0)),
    "maxResults": lambda q, v, k: setattr(q, "max_results", max(_as_int(v, k, high=INT_MAX), 0)),
}


def parse(params: Mapping[str, Any], *, paging: bool = True) -> TaskQuery:
    """Read criteria; unknown keys are ignored, as Camunda does."""
    query = TaskQuery()
    setters = {**_SCALARS, **(_PAGING if paging else {})}
    for key, value in params.items():
        if value is None:
            continue
        if key in EQUALS:
            query.equals[EQUALS[key]] = _text(value, key)
        elif key in MEMBER:
            query.members[MEMBER[key]] = _as_list(value, key)
        elif key in FLAGS:
            if _as_bool(value, key):
                query.flags.add(key)
        elif key == "withoutTenantId":
            if _as_bool(value, key):
                query.equals["tenantId"] = None
        elif key in setters:
            setters[key](query, value, key)
    if paging:
        query.sort = _sorting(params)
    return query
