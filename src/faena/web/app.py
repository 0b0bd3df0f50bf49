"""``create_app``: the ASGI application of ``faena server``.

``/healthz`` (the process is up), ``/readyz`` (the broker answers), ``/api/v1/...`` (JSON),
``/engine-rest/...`` (the Camunda 7 external-task API). With ``token`` every route but
``/healthz`` needs ``Authorization: Bearer <token>``; the Camunda routes take HTTP basic
instead (``camunda_auth=(user, password)``, or any user with the token as password).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
from collections.abc import AsyncIterator, Callable

from prometheus_client import CONTENT_TYPE_LATEST
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route, Router

from faena.app import App
from faena.camunda.server.routes import BasicAuth, CamundaAPI, basic_checker
from faena.camunda.server.service import ExternalTaskService
from faena.observability.metrics import broker_collector, new_registry, render
from faena.web import body, jobs
from faena.web.access import AccessLog
from faena.web.auth import TokenAuth
from faena.web.errors import EXCEPTION_HANDLERS
from faena.web.health import Readiness

READY_TIMEOUT_SECONDS = 5.0


def _camunda_check(
    token: str | None, camunda_auth: tuple[str, str] | None
) -> Callable[[str, str], bool] | None:
    if camunda_auth is not None:
        return basic_checker(*camunda_auth)
    if token is not None:
        secret = token.encode()
        return lambda user, password: hmac.compare_digest(password.encode(), secret)
    return None


def create_app(
    app: App,
    *,
    token: str | None = None,
    camunda_auth: tuple[str, str] | None = None,
    max_body_bytes: int | None = None,
) -> Starlette:
    """``max_body_bytes``: the largest request body read (default 1 MiB plus the app's payload
    limit); a larger one is answered ``413`` before it is read."""
    service: list[ExternalTaskService] = []

    def service_of() -> ExternalTaskService:
        if not service:
            service.append(
                ExternalTaskService(
                    app.broker, clock=app.clock, max_payload_bytes=app.max_payload_bytes
                )
            )
        return service[0]

    limit = body.default_limit(app.max_payload_bytes) if max_body_bytes is None else max_body_bytes
    camunda = CamundaAPI(service_of, max_body_bytes=limit)
    engine: Router | BasicAuth = Router(routes=camunda.routes())
    check = _camunda_check(token, camunda_auth)
    if check is not None:
        engine = BasicAuth(engine, check, bearer=token)

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    registry = new_registry()
    broker_collector(
        lambda: app.broker, queues={t.options.queue for t in app.tasks.values()}, registry=registry
    )

    async def metrics(request: Request) -> Response:
        """The broker's queues and pools, read at scrape time (``celery_queue_length``...)."""
        body = await asyncio.to_thread(render, registry)
        return Response(body, media_type=CONTENT_TYPE_LATEST)

    readiness = Readiness(lambda: app.broker.get("readyz"), READY_TIMEOUT_SECONDS)

    async def readyz(request: Request) -> Response:
        try:
            await readiness.check()
        except Exception as exc:
            return JSONResponse(
                {
                    "status": "unavailable",
                    "broker": app.broker_url,
                    "error": f"{type(exc).__name__}: {exc}",
                },
                status_code=503,
            )
        return JSONResponse({"status": "ready"})

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            camunda.hub.close()
            readiness.close()

    middleware = [Middleware(AccessLog)]
    if token is not None:
        middleware.append(Middleware(TokenAuth, token=token))
    return Starlette(
        routes=[
            Route("/healthz", healthz, methods=["GET"]),
            Route("/readyz", readyz, methods=["GET"]),
            Route("/metrics", metrics, methods=["GET"]),
            Mount("/api/v1", routes=jobs.routes(app)),
            Mount("/engine-rest", app=engine),
        ],
        middleware=middleware,
        exception_handlers=EXCEPTION_HANDLERS,
        lifespan=lifespan,
    )
