"""``create_app``: the ASGI application of ``faena server``.

``/healthz`` (the process is up), ``/readyz`` (the broker answers), ``/api/v1/...`` (the JSON
API, :mod:`faena.web.api`), ``/openapi.json`` (its OpenAPI 3.1 document), ``/engine-rest/...``
(the Camunda 7 external-task API), ``/`` and ``/static/...`` (the web console,
:mod:`faena.web.console`: files only; it reads the API with the token the user pastes in).

Tokens: ``admin_token`` (or ``token``, its older name) admits every route; ``read_token``
admits GET only. With any token configured every route but ``/healthz`` needs
``Authorization: Bearer <token>``; the Camunda routes take HTTP basic instead
(``camunda_auth=(user, password)``, or any user with an admin token as password). With no
token, reads are open and the API's mutating routes are refused unless ``no_auth``. A mutating
request a browser sent from another site (``Origin``, ``Sec-Fetch-Site``) is refused on
``/api/v1`` and ``/engine-rest`` alike, whatever its credentials.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
from collections.abc import AsyncIterator, Callable

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route, Router

from faena.app import App
from faena.camunda.server.routes import BasicAuth, CamundaAPI, basic_checker
from faena.camunda.server.service import ExternalTaskService
from faena.observability.metrics import broker_collector, new_registry, render
from faena.observability.metrics_schedules import register_schedule_metrics
from faena.web import body, console
from faena.web.access import AccessLog
from faena.web.api import PREFIX, create_api
from faena.web.auth import TokenAuth
from faena.web.errors import EXCEPTION_HANDLERS
from faena.web.guard import Access, CrossSiteGuard
from faena.web.health import Readiness

READY_TIMEOUT_SECONDS = 5.0


def _camunda_check(
    tokens: tuple[str, ...], camunda_auth: tuple[str, str] | None
) -> Callable[[str, str], bool] | None:
    if camunda_auth is not None:
        return basic_checker(*camunda_auth)
    if tokens:
        secrets = [t.encode() for t in tokens]

        def check(user: str, password: str) -> bool:
            given = password.encode()
            return any([hmac.compare_digest(given, secret) for secret in secrets])

        return check
    return None


def create_app(
    app: App,
    *,
    token: str | None = None,
    admin_token: str | None = None,
    read_token: str | None = None,
    no_auth: bool = False,
    camunda_auth: tuple[str, str] | None = None,
    max_body_bytes: int | None = None,
    metrics_registry: CollectorRegistry | None = None,
) -> Starlette:
    """``max_body_bytes``: the largest request body read (default 1 MiB plus the app's payload
    limit); a larger one is answered ``413`` before it is read. ``metrics_registry``: serve
    this registry at ``/metrics`` (the broker's collector is added to it), so that a process
    running more than the server (``faena up``: its supervisor's ``faena_desired_workers``)
    exports everything at one address."""
    admins = tuple(dict.fromkeys(t for t in (admin_token, token) if t))
    access = Access(
        admin_tokens=admins, read_tokens=(read_token,) if read_token else (), no_auth=no_auth
    )
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
    engine: Router | BasicAuth | CrossSiteGuard = Router(routes=camunda.routes())
    check = _camunda_check(admins, camunda_auth)
    if check is not None:
        engine = BasicAuth(engine, check, bearer=admins[0] if admins else None)
    engine = CrossSiteGuard(engine)
    api, document = create_api(app, access, limit)

    async def openapi(request: Request) -> Response:
        return JSONResponse(document)

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    registry = new_registry() if metrics_registry is None else metrics_registry
    broker_collector(
        lambda: app.broker,
        queues={t.options.queue for t in app.tasks.values()},
        registry=registry,
        clock=app.clock,
    )
    register_schedule_metrics(registry, app.schedules, app.events, lambda: app.broker)

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
    if access.configured:
        middleware.append(Middleware(TokenAuth, access=access))
    return Starlette(
        routes=[
            *console.routes(),
            Route("/healthz", healthz, methods=["GET"]),
            Route("/readyz", readyz, methods=["GET"]),
            Route("/metrics", metrics, methods=["GET"]),
            Route("/openapi.json", openapi, methods=["GET"]),
            Mount(PREFIX, app=api),
            Mount("/engine-rest", app=engine),
        ],
        middleware=middleware,
        exception_handlers=EXCEPTION_HANDLERS,
        lifespan=lifespan,
    )
