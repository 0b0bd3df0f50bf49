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

MAX_LIMIT = 1000


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


def _problem(status: int, message: str) -> Response:
    return JSONResponse({"error": message}, status_code=status)


def _int(request: Request, name: str, default: int, top: int) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    value = int(raw)  # ValueError is answered as 400 by the caller
    if not 0 <= value <= top:
        raise ValueError(f"{name} must be between 0 and {top}, got {value}")
    return value


def routes(app: App) -> list[BaseRoute]:
    async def list_jobs(request: Request) -> Response:
        params = request.query_params
        try:
            state = JobState(params["state"]) if "state" in params else None
            limit = _int(request, "limit", 100, MAX_LIMIT)
            offset = _int(request, "offset", 0, 10**9)
        except ValueError as exc:
            states = ", ".join(s.value for s in JobState)
            return _problem(
                400, f"{exc} (state is one of: {states}; limit and offset are integers)"
            )
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
            return _problem(404, f"no job with id {job_id!r}")
        return JSONResponse(job_json(job))

    return [
        Route("/jobs", list_jobs, methods=["GET"]),
        Route("/jobs/{id}", get_job, methods=["GET"]),
    ]
