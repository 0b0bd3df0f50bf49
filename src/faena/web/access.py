"""One access log line per HTTP request: event ``http.request`` with ``method``, ``path``,
``status`` and ``duration_ms``.

Only the path is logged, never the query string (a client may put a token there) nor any
header (``Authorization``).
"""

from __future__ import annotations

import logging
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

EVENT = "http.request"
_log = logging.getLogger("faena.server.access")


class AccessLog:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # an error escaping before the response started is answered 500

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            method, path = scope.get("method", ""), scope.get("path", "")
            duration_ms = round((time.perf_counter() - started) * 1000, 3)
            _log.info(
                f"{method} {path} {status} {duration_ms:.1f} ms",
                extra={
                    "event": EVENT,
                    "method": method,
                    "path": path,
                    "status": status,
                    "duration_ms": duration_ms,
                },
            )
