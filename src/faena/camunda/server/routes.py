"""``/engine-rest``: the Camunda 7 external-task REST API over a faena app's broker.

Wire rules the real clients depend on (docs/camunda-external-tasks.md, section 1): JSON
answers carry ``Content-Type: application/json`` exactly; void answers are ``204`` with no
body and no Content-Type; errors are ``{"type", "message", "code"}``; ``unlock`` arrives with
no body. The same routes answer under ``/engine-rest/engine/default/...``.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import hmac
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from faena.camunda.errors import RestError
from faena.camunda.server import query as q
from faena.camunda.server import requests as rq
from faena.camunda.server.longpoll import SAFETY_SECONDS, WakeHub
from faena.camunda.server.service import ExternalTaskService
from faena.core.job import Job
from faena.errors import ConfigError, PayloadError, UnknownPoolError, UnknownQueueError
from faena.web import body

#: errors of faena's own checks (broker or payload) that mean the request was bad: 400
_BAD_INPUT = (PayloadError, ConfigError, UnknownQueueError, UnknownPoolError)

ENGINE = "default"
VERSION = "7.24.0"
_log = logging.getLogger("faena.camunda")

Handler = Callable[[Request], Awaitable[Response]]


class CamundaAPI:
    """The routes, bound to one service (built on first use: opening a broker blocks)."""

    def __init__(
        self,
        service_of: Callable[[], ExternalTaskService],
        *,
        max_body_bytes: int | None = None,
    ) -> None:
        self._service_of = service_of
        self.max_body_bytes = body.default_limit() if max_body_bytes is None else max_body_bytes
        self.hub = WakeHub(lambda: self._service_of().broker)

    async def _body(self, request: Request) -> Any:
        """The JSON body, bounded and checked (:mod:`faena.web.body`); empty is ``None``."""
        return await body.read_json(request, self.max_body_bytes)

    async def _call(self, fn: Callable[..., Any], *args: Any) -> Any:
        def run() -> Any:
            return fn(self._service_of(), *args)

        return await asyncio.to_thread(run)

    # fetchAndLock ------------------------------------------------------------------------
    async def fetch_and_lock(self, request: Request) -> Response:
        req = rq.fetch_request(await self._body(request))
        topics = sorted({t.name for t in req.topics})
        if req.max_tasks == 0 or not topics:
            return _json([])
        if req.async_timeout_ms is None:
            return _json(await self._fetch_once(req, None))
        deadline = time.monotonic() + req.async_timeout_ms / 1000
        async with self.hub.listen(topics) as signal:
            watcher = asyncio.create_task(_watch_disconnect(request, signal))
            try:
                while True:
                    signal.event.clear()
                    found = await self._fetch_once(req, signal)
                    if found or signal.gone:
                        return _json(found)
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        return _json([])
                    await signal.wait(await self._wait_budget(topics, remaining))
            finally:
                watcher.cancel()

    async def _fetch_once(self, req: rq.FetchRequest, signal: Any) -> list[dict[str, Any]]:
        """Claim in a thread; if the request is cancelled or its client left meanwhile, the
        claimed tasks are given back at once instead of waiting for their locks to expire."""
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(None, lambda: self._service_of().fetch(req))
        try:
            pairs: list[tuple[Job, dict[str, Any]]] = await asyncio.shield(future)
        except asyncio.CancelledError:
            future.add_done_callback(self._give_back)
            raise
        if signal is not None and signal.gone and pairs:
            await self._call(ExternalTaskService.release, [job for job, _ in pairs])
            return []
        return [dto for _, dto in pairs]

    def _give_back(self, future: asyncio.Future[list[tuple[Job, dict[str, Any]]]]) -> None:
        if future.cancelled() or future.exception() is not None:
            return
        jobs = [job for job, _ in future.result()]
        if jobs:
            asyncio.get_running_loop().run_in_executor(
                None, lambda: self._service_of().release(jobs)
            )

    async def _wait_budget(self, topics: list[str], remaining: float) -> float:
        nxt = await asyncio.to_thread(lambda: self._service_of().broker.next_run_at(topics))
        budget = min(remaining, SAFETY_SECONDS)
        if nxt is not None:
            budget = min(budget, max(nxt - self._service_of().clock.now(), 0.01))
        return budget

    # one task ----------------------------------------------------------------------------
    async def get_task(self, request: Request) -> Response:
        return _json(await self._call(ExternalTaskService.get, request.path_params["id"]))

    async def error_details(self, request: Request) -> Response:
        text = await self._call(ExternalTaskService.error_details, request.path_params["id"])
        return _void() if text is None else PlainTextResponse(text)

    async def action(self, request: Request) -> Response:
        task_id = request.path_params["id"]
        name = request.path_params["action"]
        methods: dict[str, Callable[..., None]] = {
            "complete": ExternalTaskService.complete,
            "failure": ExternalTaskService.failure,
            "bpmnError": ExternalTaskService.bpmn_error,
            "extendLock": ExternalTaskService.extend_lock,
            "lock": ExternalTaskService.lock,
        }
        if name == "unlock":
            await self._call(ExternalTaskService.unlock, task_id)
            return _void()
        method = methods.get(name)
        if method is None:
            return _error(RestError(404, f"no external task action {name!r}", "NotFound"))
        await self._call(method, task_id, await self._body(request))
        return _void()

    async def set_retries(self, request: Request) -> Response:
        retries = rq.retries_value(await self._body(request))
        await self._call(ExternalTaskService.set_retries, request.path_params["id"], retries)
        return _void()

    async def set_retries_batch(self, request: Request) -> Response:
        await self._call(ExternalTaskService.set_retries_batch, await self._body(request))
        return _void()

    # queries -----------------------------------------------------------------------------
    async def _criteria(self, request: Request, paging: bool) -> q.TaskQuery:
        if request.method == "POST":
            parsed = await self._body(request)
            params: dict[str, Any] = parsed if isinstance(parsed, dict) else {}
            # POST keeps paging in the query string
            params = {
                **params,
                **{
                    k: v
                    for k, v in request.query_params.items()
                    if k in ("firstResult", "maxResults")
                },
            }
        else:
            params = dict(request.query_params)
        return q.parse(params, paging=paging)

    async def list_tasks(self, request: Request) -> Response:
        criteria = await self._criteria(request, paging=True)
        return _json(await self._call(ExternalTaskService.query, criteria))

    async def count_tasks(self, request: Request) -> Response:
        criteria = await self._criteria(request, paging=False)
        return _json({"count": await self._call(ExternalTaskService.count, criteria)})

    async def topic_names(self, request: Request) -> Response:
        tasks = await self._call(ExternalTaskService.query, q.TaskQuery())
        return _json(sorted({t["topicName"] for t in tasks}))

    async def engines(self, request: Request) -> Response:
        return _json([{"name": ENGINE}])

    async def version(self, request: Request) -> Response:
        return _json({"version": VERSION})

    # routing -----------------------------------------------------------------------------
    def routes(self) -> list[BaseRoute]:
        """Routes to mount under ``/engine-rest`` (also under ``/engine/default``)."""
        g = _guarded
        out: list[BaseRoute] = [
            Route("/engine", self.engines, methods=["GET"]),
            Route("/version", self.version, methods=["GET"]),
        ]
        for base in ("/external-task", "/engine/{engine}/external-task"):
            out += [
                Route(f"{base}/fetchAndLock", g(self.fetch_and_lock), methods=["POST"]),
                Route(base, g(self.list_tasks), methods=["GET", "POST"]),
                Route(f"{base}/count", g(self.count_tasks), methods=["GET", "POST"]),
                Route(f"{base}/retries", g(self.set_retries_batch), methods=["PUT"]),
                Route(f"{base}/topic-names", g(self.topic_names), methods=["GET"]),
                Route(f"{base}/{{id}}", g(self.get_task), methods=["GET"]),
                Route(f"{base}/{{id}}/errorDetails", g(self.error_details), methods=["GET"]),
                Route(f"{base}/{{id}}/retries", g(self.set_retries), methods=["PUT"]),
                Route(f"{base}/{{id}}/{{action}}", g(self.action), methods=["POST"]),
            ]
        return out


def _json(value: Any, status: int = 200) -> Response:
    return JSONResponse(value, status_code=status)


def _void() -> Response:
    return Response(status_code=204)


def _error(exc: RestError) -> Response:
    return _json(exc.body(), exc.status)


def _guarded(handler: Handler) -> Handler:
    async def run(request: Request) -> Response:
        engine = request.path_params.get("engine", ENGINE)
        if engine != ENGINE:
            return _error(
                RestError(404, f"Process engine {engine} not available", "InvalidRequestException")
            )
        try:
            return await handler(request)
        except RestError as exc:
            return _error(exc)
        except body.BodyError as exc:
            return _error(RestError(exc.status, exc.message, "InvalidRequestException"))
        except _BAD_INPUT as exc:
            return _error(RestError(400, str(exc), "InvalidRequestException"))
        except Exception as exc:
            _log.exception(
                "camunda endpoint failed",
                extra={"event": "camunda.error", "path": request.url.path},
            )
            return _error(RestError(500, f"{type(exc).__name__}: {exc}", "ProcessEngineException"))

    return run


async def _watch_disconnect(request: Request, signal: Any) -> None:
    with contextlib.suppress(Exception):
        while True:
            message = await request.receive()
            if message["type"] == "http.disconnect":
                signal.gone = True
                signal.event.set()
                return


class BasicAuth:
    """HTTP basic auth for the Camunda routes; ``/engine`` (the engine list, right under the
    mount point) stays open, as in Camunda; every other path needs credentials.

    ``check(user, password)`` decides; a failure is ``401`` with an empty body and
    ``WWW-Authenticate: Basic realm="default"``. ``bearer`` (optional) also admits
    ``Authorization: Bearer <token>`` (the Python client's ``auth_bearer``).
    """

    def __init__(
        self, app: ASGIApp, check: Callable[[str, str], bool], bearer: str | None = None
    ) -> None:
        self.app = app
        self.check = check
        self.bearer = bearer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or _route_path(scope).rstrip("/") in OPEN_PATHS:
            await self.app(scope, receive, send)
            return
        header = dict(scope.get("headers") or []).get(b"authorization", b"").decode("latin-1")
        if self._admits(header):
            await self.app(scope, receive, send)
            return
        deny = Response(status_code=401, headers={"WWW-Authenticate": f'Basic realm="{ENGINE}"'})
        await deny(scope, receive, send)

    def _admits(self, header: str) -> bool:
        scheme, _, value = header.partition(" ")
        if scheme.lower() == "bearer" and self.bearer is not None:
            return hmac.compare_digest(value.strip().encode(), self.bearer.encode())
        if scheme.lower() != "basic":
            return False
        try:
            user, sep, password = (
                base64.b64decode(value.strip(), validate=True).decode("utf-8").partition(":")
            )
        except (binascii.Error, ValueError):
            return False
        return bool(sep) and self.check(user, password)


#: paths under the mount point that need no credentials (exact matches only)
OPEN_PATHS = frozenset({"/engine"})


def _route_path(scope: Scope) -> str:
    """The path below the mount point (Starlette keeps the full path and sets ``root_path``)."""
    path: str = scope.get("path", "")
    root: str = scope.get("root_path", "")
    return path[len(root) :] if root and path.startswith(root) else path


def basic_checker(user: str, password: str) -> Callable[[str, str], bool]:
    def check(u: str, p: str) -> bool:
        return hmac.compare_digest(u.encode(), user.encode()) & hmac.compare_digest(
            p.encode(), password.encode()
        )

    return check
