"""JSON error bodies for ``faena server``'s routes outside ``/api/v1`` (whose errors are
problem+json, :mod:`faena.web.problems`): unknown routes, wrong methods, a failing broker.

Every error is ``{"error": CODE, "message": TEXT, ...}`` with a stable ``CODE``
(``not_found``, ``method_not_allowed``, ``unauthorized``...) and a
message that names what was asked and what exists; the Camunda routes keep Camunda's own
``{"type", "message"}`` body (a ``message`` is there too).
"""

from __future__ import annotations

from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from faena.errors import BrokerError, ConfigError, PayloadError
from faena.web import problems

#: the routes a 404 lists (what exists)
ROUTES = (
    "GET /healthz",
    "GET /readyz",
    "GET /metrics",
    "GET /openapi.json",
    "GET, POST /api/v1/jobs",
    "GET /api/v1/jobs/{id}",
    "POST /api/v1/jobs/{id}/retry",
    "POST /api/v1/jobs/{id}/cancel",
    "GET /api/v1/queues",
    "GET /api/v1/pools",
    "PUT /api/v1/pools/{pool}",
    "/engine-rest/... (the Camunda 7 external-task API)",
)
_CODES = {400: "bad_request", 401: "unauthorized", 404: "not_found", 405: "method_not_allowed"}


def problem(status: int, code: str, message: str, **fields: Any) -> Response:
    return JSONResponse({"error": code, "message": message, **fields}, status_code=status)


async def http_error(request: Request, exc: Exception) -> Response:
    """Starlette's HTTP errors (unknown route, method not allowed...) as JSON."""
    assert isinstance(exc, HTTPException)
    method, path = request.method, request.url.path
    if path == "/api/v1" or path.startswith("/api/v1/"):  # one the mount did not match
        return await problems.http_error(request, exc)
    headers = dict(exc.headers or {})
    body: dict[str, Any]
    if exc.status_code == 404:
        body = {
            "error": "not_found",
            "message": f"faena server has no route {method} {path}; it serves: "
            + ", ".join(ROUTES),
            "method": method,
            "path": path,
            "routes": list(ROUTES),
        }
    elif exc.status_code == 405:
        allow = next((v for k, v in headers.items() if k.lower() == "allow"), "")
        allowed = sorted(m.strip() for m in allow.split(",") if m.strip())
        headers = {k: v for k, v in headers.items() if k.lower() != "allow"}
        headers["Allow"] = ", ".join(allowed)  # Starlette's order varies from run to run
        body = {
            "error": "method_not_allowed",
            "message": f"{path} does not accept {method}; allowed: "
            + (", ".join(allowed) or "none"),
            "method": method,
            "path": path,
            "allowed": allowed,
        }
    else:
        body = {
            "error": _CODES.get(exc.status_code, "http_error"),
            "message": f"{method} {path}: {exc.detail}",
        }
    if path.startswith("/engine-rest"):  # Camunda clients read "type" and "message"
        body = {"type": "InvalidRequestException", **body}
    return JSONResponse(body, status_code=exc.status_code, headers=headers)


async def internal_error(request: Request, exc: Exception) -> Response:
    """An unexpected error: a JSON 500 naming the error (the traceback goes to the log)."""
    return problem(
        500,
        "internal_error",
        f"{request.method} {request.url.path} failed: {type(exc).__name__}: {exc}",
    )


async def broker_error(request: Request, exc: Exception) -> Response:
    """The broker failed or cannot be reached: 503, with the broker's own message."""
    return problem(
        503,
        "broker_unavailable",
        f"{request.method} {request.url.path}: the broker failed: {exc}",
    )


async def bad_input(request: Request, exc: Exception) -> Response:
    """A value faena refuses (an identifier with NUL, a bad option, a payload that is not
    JSON): 400, with the refusal's own message, which names the field and what is allowed."""
    field = getattr(exc, "field", None)
    return problem(400, "invalid_value", str(exc), **({"field": field} if field else {}))


EXCEPTION_HANDLERS = {
    HTTPException: http_error,
    BrokerError: broker_error,
    ConfigError: bad_input,  # InvalidValueError among them
    PayloadError: bad_input,
    Exception: internal_error,
}
