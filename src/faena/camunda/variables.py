"""Camunda's typed variable format (``{"name": {"type", "value", "valueInfo"}}``) both ways.

Three conversions, one module:

* :func:`to_typed` — a Python value to a typed variable (our server's fetch answers and our
  client's complete/failure bodies);
* :func:`from_typed` — a typed variable to a rich Python value (our client reading a fetched
  task: ``Date`` becomes ``datetime``, ``Bytes`` becomes ``bytes``, ``Json`` is parsed);
* :func:`to_plain` — a typed variable to plain JSON (our server storing a job's result).

Type names are matched case-insensitively: the JS client sends ``integer``, the Python client
``Integer``. A value that does not fit its type raises :class:`VariableError` naming it.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from faena.core.jsonlimits import JsonLimitError, check_json_text

INT32 = (-(2**31), 2**31 - 1)
INT64 = (-(2**63), 2**63 - 1)
INT16 = (-(2**15), 2**15 - 1)
#: the first and last millisecond a date can show
FIRST_DATE = datetime(1, 1, 1, tzinfo=UTC)
LAST_DATE = datetime(9999, 12, 31, 23, 59, 59, 999000, tzinfo=UTC)

#: the canonical (output) spelling of every type we accept
TYPES = {
    name.lower(): name
    for name in (
        "String",
        "Integer",
        "Long",
        "Short",
        "Double",
        "Boolean",
        "Null",
        "Date",
        "Bytes",
        "File",
        "Json",
        "Xml",
        "Object",
    )
}


class VariableError(ValueError):
    """A variable's type is unknown or its value does not fit the type."""


@dataclass(frozen=True, slots=True)
class FileValue:
    """A ``File`` variable: its name and media type, and its bytes when they were sent."""

    filename: str | None
    mime_type: str | None
    encoding: str | None = None
    content: bytes | None = None


# dates ---------------------------------------------------------------------------------
def format_date(when: datetime | float) -> str:
    """Camunda's date format, ``yyyy-MM-dd'T'HH:mm:ss.SSSZ``: ``2025-01-31T12:00:00.000+0000``.

    A timestamp past what a date can show (a lease of thousands of years stored before faena
    bounded lock durations) is shown as the last millisecond of year 9999, or the first of
    year 1, instead of failing the whole answer."""
    if not isinstance(when, datetime):
        if math.isnan(when) or when >= LAST_DATE.timestamp():
            when = LAST_DATE
        elif when <= FIRST_DATE.timestamp():
            when = FIRST_DATE
        else:
            when = datetime.fromtimestamp(when, UTC)
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return (
        f"{when.year:04d}"
        + when.strftime("-%m-%dT%H:%M:%S.")
        + f"{when.microsecond // 1000:03d}"
        + (when.strftime("%z") or "+0000")
    )


def parse_date(text: str) -> datetime:
    """Parse Camunda dates (``...SSSZ``), ISO 8601 with ``Z`` or ``+hh:mm``, or no offset (UTC)."""
    value = text.strip()
    if value.endswith("Z"):
        value = value[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        try:
            parsed = datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%f%z")
        except ValueError:
            raise VariableError(
                f"cannot parse date {text!r}; use yyyy-MM-dd'T'HH:mm:ss.SSSZ, e.g. "
                f"2025-01-31T12:00:00.000+0000"
            ) from None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


# Python -> typed ------------------------------------------------------------------------
def to_typed(value: Any) -> dict[str, Any]:
    """Encode one Python value with an explicit type (never untyped: see protocol 4.2)."""
    if isinstance(value, bool):
        return _typed("Boolean", value)
    if isinstance(value, int):
        if INT32[0] <= value <= INT32[1]:
            return _typed("Integer", value)
        if INT64[0] <= value <= INT64[1]:
            return _typed("Long", value)
        raise VariableError(f"integer {value} does not fit in 64 bits; send it as a string")
    if isinstance(value, float):
        return _typed("Double", value)
    if isinstance(value, str):
        return _typed("String", value)
    if value is None:
        return _typed("Null", None)
    if isinstance(value, datetime):
        return _typed("Date", format_date(value))
    if isinstance(value, bytes | bytearray):
        return _typed("Bytes", base64.b64encode(bytes(value)).decode("ascii"))
    if isinstance(value, FileValue):
        info = {
            k: v
            for k, v in (
                ("filename", value.filename),
                ("mimeType", value.mime_type),
                ("encoding", value.encoding),
            )
            if v is not None
        }
        data = None if value.content is None else base64.b64encode(value.content).decode()
        return {"type": "File", "value": data, "valueInfo": info}
    if isinstance(value, dict | list | tuple):
        try:
            text = json.dumps(value, separators=(",", ":"), allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise VariableError(f"value {value!r} is not JSON: {exc}") from None
        return _typed("Json", text)
    raise VariableError(
        f"cannot send a {type(value).__name__} as a Camunda variable; use str, int, float, "
        f"bool, None, datetime, bytes, dict or list"
    )


def to_typed_map(values: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: to_typed(value) for name, value in values.items()}


def _typed(type_name: str, value: Any) -> dict[str, Any]:
    return {"type": type_name, "value": value, "valueInfo": {}}


# typed -> Python ------------------------------------------------------------------------
def type_of(name: str, variable: Any) -> str:
    """The canonical type name of a typed variable, inferring it when ``type`` is absent."""
    if not isinstance(variable, dict):
        raise VariableError(
            f'variable {name!r} must be an object like {{"value": 1, "type": "Integer"}}, '
            f"got {type(variable).__name__}"
        )
    raw = variable.get("type")
    if raw is None:
        return _infer(variable.get("value"))
    if not isinstance(raw, str) or raw.lower() not in TYPES:
        raise VariableError(f"Unsupported value type '{raw}'")
    return TYPES[raw.lower()]


def _infer(value: Any) -> str:
    if value is None:
        return "Null"
    if isinstance(value, bool):
        return "Boolean"
    if isinstance(value, int):
        return "Integer" if INT32[0] <= value <= INT32[1] else "Long"
    if isinstance(value, float):
        return "Double"
    if isinstance(value, str):
        return "String"
    return "Json"  # lenient: Camunda would need Java serialization for objects and arrays


def _check_int(name: str, value: Any, bounds: tuple[int, int], type_name: str) -> int:
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            value = int(value.strip())
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if (
        isinstance(value, bool)
        or not isinstance(value, int)
        or not (bounds[0] <= value <= bounds[1])
    ):
        raise VariableError(
            f"Cannot convert value '{value}' of variable {name!r} to type {type_name}"
        )
    return int(value)


def _scalar(name: str, type_name: str, value: Any) -> Any:
    """Check a non-serialized value against its type; returns the normalized JSON value."""
    if value is None:
        return None
    if type_name in ("Integer", "Long", "Short"):
        bounds = {"Integer": INT32, "Long": INT64, "Short": INT16}[type_name]
        return _check_int(name, value, bounds, type_name)
    if type_name == "Double":
        if isinstance(value, str):
            with contextlib.suppress(ValueError):
                value = float(value)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise VariableError(f"Cannot convert value '{value}' of variable {name!r} to Double")
        return float(value)
    if type_name == "Boolean":
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        if not isinstance(value, bool):
            raise VariableError(f"Cannot convert value '{value}' of variable {name!r} to Boolean")
        return value
    if not isinstance(value, str):
        raise VariableError(
            f"Must provide 'null' or String value for value of type '{type_name}' "
            f"(variable {name!r})"
        )
    return value


def _value_info(variable: Mapping[str, Any]) -> dict[str, Any]:
    info = variable.get("valueInfo")
    return info if isinstance(info, dict) else {}


def _bytes(name: str, value: str) -> bytes:
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise VariableError(f"variable {name!r}: value is not valid base64") from None


def _json_text(name: str, type_name: str, value: str) -> Any:
    """A ``Json`` (or ``Object``) variable's text, its depth measured before it is parsed."""
    try:
        check_json_text(f"the value of variable {name!r} of type {type_name}", value)
    except JsonLimitError as exc:
        raise VariableError(exc.message) from None
    try:
        return json.loads(value)
    except ValueError:
        raise VariableError(f"variable {name!r} of type {type_name} is not valid JSON") from None


def from_typed(name: str, variable: Any) -> Any:
    """Decode for a handler: rich Python values."""
    type_name = type_of(name, variable)
    value = _scalar(name, type_name, variable.get("value"))
    if value is None and type_name != "File":
        return None
    info = _value_info(variable)
    if type_name == "Date":
        return parse_date(value)
    if type_name == "Bytes":
        return _bytes(name, value)
    if type_name == "Json":
        return _json_text(name, type_name, value)
    if type_name == "Object" and info.get("serializationDataFormat") == "application/json":
        return _json_text(name, type_name, value)
    if type_name == "File":
        return FileValue(
            info.get("filename"),
            info.get("mimeType") or info.get("mimetype"),
            info.get("encoding"),
            None if value is None else _bytes(name, value),
        )
    return value


def to_plain(name: str, variable: Any) -> Any:
    """Decode for storage as a job's result: plain JSON (dates and bytes stay strings)."""
    type_name = type_of(name, variable)
    raw = variable.get("value")
    if variable.get("type") is None and isinstance(raw, dict | list):
        return raw  # an untyped object or array: kept as JSON (lenient, see _infer)
    if type_name == "Json" and not isinstance(raw, str | None):
        raise VariableError(
            f"Must provide 'null' or String value for value of SerializableValue type 'Json' "
            f"(variable {name!r})"
        )
    if type_name not in ("Json", "Object", "File", "Xml", "String", "Date", "Bytes"):
        return _scalar(name, type_name, raw)
    if type_name == "Json" and raw is None:
        return None
    rich = from_typed(name, variable)
    if isinstance(rich, datetime):
        return format_date(rich)
    if isinstance(rich, bytes):
        return raw
    if isinstance(rich, FileValue):
        return {"filename": rich.filename, "mimeType": rich.mime_type, "content": raw}
    return rich


def plain_map(variables: Any, what: str = "variables") -> dict[str, Any]:
    """Decode a map of typed variables (``null`` counts as empty) for storage."""
    if variables is None:
        return {}
    if not isinstance(variables, dict):
        raise VariableError(f"{what} must be an object of name -> {{value, type}}")
    return {str(name): to_plain(str(name), var) for name, var in variables.items()}


def rich_map(variables: Any) -> dict[str, Any]:
    if not variables:
        return {}
    return {str(name): from_typed(str(name), var) for name, var in variables.items()}
