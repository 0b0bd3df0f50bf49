"""``/api/v1/jobs``: jobs as JSON, read-only for now."""

from __future__ import annotations

import asyncio
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from faena.app import App
from faena.core.job import Job
from faena.core.states import JobState
from faena.web.errors import InvalidParameter, problem

#: page size of ``GET /api/v1/jobs`` (``limit``): default and most
DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
#: deepest ``offset``: past it, filter instead (``state``, ``queue``, ``task``)
MAX_OFFSET = 100_000


def job_json(job: Job) -> dict[str, Any]:
    error = None
    if job.error is not None:
        error = {
            "type": job.error.type,
            "message": job.error.message,
            "traceback": job.error.traceback,
        }
    return {
        "id": job.id,
        "task": job.task,
        "queue": job.queue,
        "state": job.state.value,
        "priority": job.priority,
        "pool": job.pool,
        "pool_slots": job.pool_slots,
        "attempt": job.attempt,
        "tries": job.tries,
        "max_attempts": job.max_attempts,
        "timeout": job.timeout,
        "idempotency_key": job.idempotency_key,
        "enqueued_at": job.enqueued_at,
        "run_at": job.run_at,
        "started_at": job.started_at,
        "finished_at": job.finished_at,
        "lease_expires_at": job.lease_expires_at,
        "worker": job.worker,
        "args": job.args,
        "kwargs": job.kwargs,
        "result": job.result,
        "error": error,
        "cancel_requested": job.cancel_requested,
    }


def _int(request: Request, name: str, default: int, low: int, top: int) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    allowed = f"a whole number from {low} to {top}"
    try:
        value = int(raw.strip())
    except ValueError:
        raise InvalidParameter(name, raw, allowed) from None
    if not low <= value <= top:
        raise InvalidParameter(name, raw, allowed)
    return value


def _state(request: Request) -> JobState | None:
    raw = request.query_params.get("state")
    if raw is None:
        return None
    try:
        return JobState(raw)
    except ValueError:
        states = ", ".join(s.value for s in JobState)
        raise InvalidParameter("state", raw, f"one of {states}") from None


LIST_PARAMS = ("state", "queue", "task", "limit", "offset")


def _known(request: Request) -> None:
    for name, value in request.query_params.items():
        if name not in LIST_PARAMS:
            takes = ", ".join(LIST_PARAMS)
            raise InvalidParameter(
                name,
                value,
                f"one of {takes}",
                f"unknown query parameter {name}={value!r}: GET /api/v1/jobs takes {takes}",
            )


def routes(app: App) -> list[BaseRoute]:
    async def list_jobs(request: Request) -> Response:
        params = request.query_params
        try:
            _known(request)
            state = _state(request)
            limit = _int(request, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT)
            offset = _int(request, "offset", 0, 0, MAX_OFFSET)
        except InvalidParameter as exc:
            return exc.response()
        jobs = await asyncio.to_thread(
            app.broker.list_jobs,
            state=state,
            queue=params.get("queue"),
            task=params.get("task"),
            limit=limit,
            offset=offset,
        )
        return JSONResponse({"jobs": [job_json(j) for j in jobs], "limit": limit, "offset": offset})

    async def get_job(request: Request) -> Response:
        job_id = request.path_params["id"]
        job = await asyncio.to_thread(app.broker.get, job_id)
        if job is None:
            return problem(
                404,
                "not_found",
                f"no job with id {job_id!r}; list jobs with GET /api/v1/jobs",
                id=job_id,
            )
        return JSONResponse(job_json(job))

    return [
        Route("/jobs", list_jobs, methods=["GET"]),
        Route("/jobs/{id}", get_job, methods=["GET"]),
    ]
