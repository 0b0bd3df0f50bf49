"""``/api/v1``: faena's HTTP API (FastAPI), and its OpenAPI 3.1 document.

The routes validate their input with the pydantic models of :mod:`faena.web.schemas`, which
are also the document's schemas; :class:`~faena.web.guard.ApiGuard` stands in front (tokens,
cross-site requests, body size). The document is served at ``/openapi.json`` with the full
paths (``/api/v1/jobs``...), the bearer scheme, and the ``400`` problem answers where FastAPI
would list its own ``422``.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, Path
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp

from faena.app import App
from faena.core.pools import check_pools
from faena.version import __version__
from faena.web import autoscaler, bulk, jobs, pipelines, stats
from faena.web.guard import Access, ApiGuard
from faena.web.problems import HANDLERS, MEDIA_TYPE, PROBLEM_RESPONSE, problem
from faena.web.schemas import (
    PoolOut,
    Pools,
    PoolSize,
    QueueOut,
    QueuePause,
    Queues,
    WorkerOut,
    Workers,
)

PREFIX = "/api/v1"
#: answered by the guard or the handlers on every route (404: a path parameter the route
#: cannot match, such as a pool name with a slash)
COMMON_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: PROBLEM_RESPONSE,
    401: PROBLEM_RESPONSE,
    403: PROBLEM_RESPONSE,
    404: PROBLEM_RESPONSE,
    503: PROBLEM_RESPONSE,
}

PoolName = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")]
QueueName = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")]


def _stats(app: App) -> APIRouter:
    stats = APIRouter(tags=["queues and pools"])

    @stats.get("/queues", response_model=Queues, summary="Jobs waiting and running per queue")
    async def queues() -> Queues:
        def run() -> Queues:
            found = app.broker.queue_stats()
            paused = app.broker.paused_queues()
            out = [
                QueueOut(
                    queue=q.queue,
                    waiting=q.waiting,
                    scheduled=q.scheduled,
                    running=q.running,
                    oldest_age=q.oldest_age,
                    paused=q.queue in paused,
                )
                for q in found
            ]
            idle = sorted(paused - {q.queue for q in found})  # paused, and no job in it
            out += [
                QueueOut(queue=q, waiting=0, scheduled=0, running=0, oldest_age=0.0, paused=True)
                for q in idle
            ]
            return Queues(queues=out)

        return await asyncio.to_thread(run)

    @stats.post(
        "/queues/{queue}/pause",
        response_model=QueuePause,
        summary="Pause a queue: workers claim none of its jobs until it is resumed",
    )
    async def pause(queue: QueueName) -> QueuePause:
        def run() -> QueuePause:
            changed = app.broker.pause_queue(queue)
            jobs.audit("api.queue_paused", queue=queue, changed=changed)
            return QueuePause(queue=queue, paused=True, changed=changed)

        return await asyncio.to_thread(run)

    @stats.post(
        "/queues/{queue}/resume",
        response_model=QueuePause,
        summary="Resume a paused queue (its waiting workers are woken)",
    )
    async def resume(queue: QueueName) -> QueuePause:
        def run() -> QueuePause:
            changed = app.broker.resume_queue(queue)
            jobs.audit("api.queue_resumed", queue=queue, changed=changed)
            return QueuePause(queue=queue, paused=False, changed=changed)

        return await asyncio.to_thread(run)

    @stats.get("/workers", response_model=Workers, summary="Worker processes in the registry")
    async def workers() -> Workers:
        def run() -> Workers:
            now = app.clock.now()
            return Workers(
                workers=[
                    WorkerOut(
                        id=r.report.id,
                        host=r.report.host,
                        pid=r.report.pid,
                        queues=list(r.report.queues),
                        concurrency=r.report.concurrency,
                        version=r.report.version,
                        started_at=r.report.started_at,
                        seen_at=r.seen_at,
                        state=r.state_at(now),
                    )
                    for r in app.broker.list_workers()
                ]
            )

        return await asyncio.to_thread(run)

    @stats.get("/pools", response_model=Pools, summary="Pools: size and slots in use")
    async def pools() -> Pools:
        found = await asyncio.to_thread(app.broker.pool_stats)
        return Pools(pools=[PoolOut(pool=p.pool, size=p.size, used=p.used) for p in found])

    @stats.put(
        "/pools/{pool}",
        response_model=PoolOut,
        summary="Create or resize a pool",
        responses={413: PROBLEM_RESPONSE},
    )
    async def resize(pool: PoolName, new: PoolSize) -> PoolOut:
        sizes = check_pools({pool: new.size})

        def run() -> PoolOut:
            app.broker.set_pools(sizes)
            jobs.audit("api.pool_resized", pool=pool, size=sizes[pool])
            stat = next(p for p in app.broker.pool_stats() if p.pool == pool)
            return PoolOut(pool=stat.pool, size=stat.size, used=stat.used)

        return await asyncio.to_thread(run)

    return stats


async def _internal(request: Request, exc: Exception) -> Response:
    detail = f"{request.method} {request.url.path} failed: {type(exc).__name__}: {exc}"
    return problem(500, "internal_error", detail)


def _document(api: FastAPI) -> dict[str, Any]:
    doc = api.openapi()
    paths: dict[str, Any] = {}
    for path, operations in doc.get("paths", {}).items():
        for operation in operations.values():
            responses = operation.get("responses", {})
            responses.pop("422", None)
            for answer in responses.values():
                content = answer.get("content", {})
                if MEDIA_TYPE in content and "application/json" in content:
                    del content["application/json"]  # problems are problem+json only
            operation["security"] = [{"bearer": []}, {}]
        paths[PREFIX + path] = operations
    doc["paths"] = paths
    schemas = doc.get("components", {}).get("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)
    doc.setdefault("components", {})["securitySchemes"] = {
        "bearer": {
            "type": "http",
            "scheme": "bearer",
            "description": "the admin token (every route) or the read token (GET only)",
        }
    }
    return doc


def create_api(app: App, access: Access, max_body_bytes: int) -> tuple[ASGIApp, dict[str, Any]]:
    """The guarded ``/api/v1`` app, to mount at ``/api/v1``, and its OpenAPI document."""
    api = FastAPI(
        title="faena",
        version=__version__,
        summary="Background jobs: enqueue, inspect, retry and cancel; queues and pools.",
        openapi_url=None,
        docs_url=None,
        redoc_url=None,
        responses=COMMON_RESPONSES,
        exception_handlers={**HANDLERS, Exception: _internal},
    )
    api.include_router(jobs.router(app))
    api.include_router(bulk.router(app))
    api.include_router(pipelines.router(app))
    api.include_router(_stats(app))
    api.include_router(stats.router(app))
    api.include_router(autoscaler.router(app))
    return ApiGuard(api, access, max_body_bytes), _document(api)


__all__ = ["PREFIX", "create_api"]
