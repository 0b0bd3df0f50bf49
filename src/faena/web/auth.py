"""Bearer-token protection for faena's routes outside ``/api/v1``.

``/readyz``, ``/metrics``, ``/openapi.json`` and unknown paths: an admin or read token admits
GET and HEAD, only an admin token anything else. ``/healthz`` always stays open;
``/api/v1`` has its own guard (:mod:`faena.web.guard`, problem+json answers); the Camunda
routes under ``/engine-rest`` have their own HTTP basic auth. The web console's files (``/``,
``/static/...``) are open too: they hold no data, and the page sends the token on each API call."""

from __future__ import annotations

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from faena.web.guard import READ_METHODS, Access, Role

OPEN_PATHS = frozenset({"/healthz", "/"})
#: mount points open without a token (the console's files)
OPEN_ROOTS = ("/static",)
#: mount points that check credentials themselves
GUARDED_ROOTS = ("/engine-rest", "/api/v1")


def _under(path: str, root: str) -> bool:
    return path == root or path.startswith(root + "/")


class TokenAuth:
    """Admit ``Authorization: Bearer <token>``; answer 401 JSON otherwise."""

    def __init__(self, app: ASGIApp, access: Access) -> None:
        self.app = app
        self.access = access

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        guarded = any(_under(path, root) for root in GUARDED_ROOTS)
        open_root = any(_under(path, root) for root in OPEN_ROOTS)
        if scope["type"] != "http" or path in OPEN_PATHS or guarded or open_root:
            await self.app(scope, receive, send)
            return
        header = dict(scope.get("headers") or []).get(b"authorization", b"")
        role = self.access.role(header)
        if role is Role.ADMIN or (role is Role.READ and scope.get("method") in READ_METHODS):
            await self.app(scope, receive, send)
            return
        deny = JSONResponse(
            {
                "error": "unauthorized",
                "message": "send 'Authorization: Bearer <token>' with a token the server was "
                "started with (FAENA_ADMIN_TOKEN, FAENA_READ_TOKEN or FAENA_TOKEN)",
            },
            status_code=401,
            headers={"WWW-Authenticate": 'Bearer realm="faena"'},
        )
        await deny(scope, receive, send)
