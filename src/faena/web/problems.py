"""Errors of the ``/api/v1`` routes as ``application/problem+json`` (RFC 9457).

Every body has ``type`` (``urn:faena:problem:<code>``), ``title``, ``status`` and ``detail``,
and two extension members: ``error`` (the stable ``<code>``, as faena's other routes answer)
with ``message`` (the same text as ``detail``), and ``errors``: one entry per refused field
with the ``field``, the ``value`` sent and the ``fix``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from http import HTTPStatus
from typing import Any

from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from faena.errors import (
    BrokerError,
    ConfigError,
    InvalidTransitionError,
    JobNotFoundError,
    PayloadError,
    UnknownPoolError,
    UnknownTaskError,
)

MEDIA_TYPE = "application/problem+json"


class FieldError(BaseModel):
    """One refused input: where it was, what was sent, and what to send instead."""

    field: str = Field(description="where: a query parameter, path parameter or body field")
    value: Any = Field(default=None, description="the value sent (null if it was missing)")
    fix: str = Field(description="what the field must be")


class Problem(BaseModel):
    """An RFC 9457 problem document."""

    type: str = Field(description="urn:faena:problem:<error>")
    title: str
    status: int
    detail: str
    error: str = Field(description="a stable code: invalid_parameter, not_found, conflict...")
    message: str = Field(description="the same text as detail")
    errors: list[FieldError] = Field(default_factory=list)


def problem(
    status: int,
    code: str,
    detail: str,
    errors: Sequence[FieldError] = (),
    headers: dict[str, str] | None = None,
) -> Response:
    body = Problem(
        type=f"urn:faena:problem:{code}",
        title=HTTPStatus(status).phrase,
        status=status,
        detail=detail,
        error=code,
        message=detail,
        errors=list(errors),
    )
    return JSONResponse(
        body.model_dump(mode="json"), status_code=status, media_type=MEDIA_TYPE, headers=headers
    )


def _jsonable(value: Any) -> Any:
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError):
        return repr(value)
    return value


def _field(loc: Sequence[int | str]) -> tuple[str, str]:
    """(where, name): ``("query", "limit")``, ``("body", "kwargs.x")``."""
    where = str(loc[0]) if loc else "body"
    name = ".".join(str(part) for part in loc[1:]) or where
    return where, name


async def validation_error(request: Request, exc: Exception) -> Response:
    """Input that does not fit the route's schema: 400, each field with value and fix."""
    assert isinstance(exc, RequestValidationError)
    errors: list[FieldError] = []
    places: set[str] = set()
    for item in exc.errors():
        where, name = _field(item.get("loc", ()))
        places.add(where)
        value = None if item.get("type") == "missing" else item.get("input")
        fix = str(item.get("msg", ""))
        if isinstance(value, bytes):  # a body FastAPI did not parse: not sent as JSON
            value = value.decode("utf-8", "replace")
            fix = f"{fix}; send the body as JSON with 'Content-Type: application/json'"
        errors.append(FieldError(field=name, value=_jsonable(value), fix=fix))
    code = "invalid_body" if "body" in places else "invalid_parameter"
    said = "; ".join(f"{e.field}={e.value!r}: {e.fix}" for e in errors)
    detail = f"{request.method} {request.url.path}: invalid input: {said}"
    return problem(400, code, detail, errors)


async def http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    detail = f"{request.method} {request.url.path}: {exc.detail}"
    if exc.status_code == 404:
        detail = f"/api/v1 has no route {request.method} {request.url.path}; see /openapi.json"
    return problem(exc.status_code, code, detail, headers=dict(exc.headers or {}))


def _refusal(status: int, code: str) -> Any:
    async def handle(request: Request, exc: Exception) -> Response:
        field = getattr(exc, "field", None)
        errors = []
        if field:
            value = _jsonable(getattr(exc, "value", None))
            errors = [FieldError(field=field, value=value, fix=str(exc))]
        return problem(status, code, str(exc), errors)

    return handle


async def broker_error(request: Request, exc: Exception) -> Response:
    detail = f"{request.method} {request.url.path}: the broker failed: {exc}; retry later"
    return problem(503, "broker_unavailable", detail)


HANDLERS: dict[int | type[Exception], Any] = {
    RequestValidationError: validation_error,
    HTTPException: http_error,
    JobNotFoundError: _refusal(404, "not_found"),
    InvalidTransitionError: _refusal(409, "conflict"),
    UnknownPoolError: _refusal(409, "unknown_pool"),
    UnknownTaskError: _refusal(400, "unknown_task"),
    ConfigError: _refusal(400, "invalid_value"),
    PayloadError: _refusal(400, "invalid_value"),
    BrokerError: broker_error,
}

#: documented on every route (the OpenAPI ``responses``)
PROBLEM_RESPONSE: dict[str, Any] = {"model": Problem, "content": {MEDIA_TYPE: {}}}
