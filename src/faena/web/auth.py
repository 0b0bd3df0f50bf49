"""Bearer-token protection for faena's own routes. ``/healthz`` always stays open; the
Camunda routes under ``/engine-rest`` have their own HTTP basic auth."""

from __future__ import annotations

import hmac

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

OPEN_PATHS = frozenset({"/healthz"})
#: the Camunda routes' mount point: they check HTTP basic auth themselves
CAMUNDA_ROOT = "/engine-rest"


class TokenAuth:
    """Admit ``Authorization: Bearer <token>``; answer 401 JSON otherwise."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self.token = token.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        camunda = path == CAMUNDA_ROOT or path.startswith(CAMUNDA_ROOT + "/")  # basic auth there
        if scope["type"] != "http" or path in OPEN_PATHS or camunda:
            await self.app(scope, receive, send)
            return
        header = dict(scope.get("headers") or []).get(b"authorization", b"")
        scheme, _, value = header.partition(b" ")
        if scheme.lower() == b"bearer" and hmac.compare_digest(value.strip(), self.token):
            await self.app(scope, receive, send)
            return
        deny = JSONResponse(
            {
                "error": "unauthorized",
                "message": "send 'Authorization: Bearer <token>' with the "
                "token the server was started with (FAENA_TOKEN)",
            },
            status_code=401,
            headers={"WWW-Authenticate": 'Bearer realm="faena"'},
        )
        await deny(scope, receive, send)
