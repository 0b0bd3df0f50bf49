"""``/api/v1/jobs``: list, show, enqueue by task name, retry and cancel jobs.

Broker calls run in a thread (``asyncio.to_thread``): the stores' clients block. Each change
is logged (:func:`audit`): ``api.job_enqueued``, ``api.job_retried``, ``api.job_cancelled``.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request, Response
from fastapi.exceptions import RequestValidationError

from faena.app import App
from faena.core import search as searching
from faena.core.job import Job
from faena.core.search import MAX_TEXT, JobSearch
from faena.core.states import JobState
from faena.errors import ConfigError, JobNotFoundError
from faena.web.problems import PROBLEM_RESPONSE
from faena.web.schemas import (
    DEFAULT_LIMIT,
    MAX_LIMIT,
    MAX_NAME,
    MAX_OFFSET,
    EnqueueRequest,
    JobOut,
    JobPage,
)

LIST_PARAMS = ("state", "queue", "task", "limit", "offset", "cursor", "since", "until", "text")
SEARCH_DOC = (
    "Filters: state, queue, task (read off indexes), since / until (the job's enqueued_at, "
    "POSIX seconds) and text (checked on the rows of the indexed filters, at most "
    f"{searching.SCAN_BUDGET} of them a page: a page that stops there is `truncated`, "
    "more may match from its next_cursor). Pages: pass `next_cursor` back as `cursor`; a job "
    "that keeps matching is returned once however jobs move between pages. `offset` still "
    "pages the plain filters (not with a cursor, a time range or a text)."
)
_log = logging.getLogger("faena.server.api")


def audit(event: str, **fields: object) -> None:
    """One log line for a change made through the API: a stable ``event`` and its fields."""
    said = " ".join(f"{k}={v}" for k, v in fields.items())
    _log.info(f"{event} {said}", extra={"event": event, **fields})


def _acted(event: str, job: Job) -> JobOut:
    audit(event, job_id=job.id, task=job.task, queue=job.queue, state=job.state.value)
    return JobOut.of(job)


Name = Annotated[str | None, Query(min_length=1, max_length=MAX_NAME)]
JobId = Annotated[str, Path(min_length=1, max_length=MAX_NAME, description="the job's id")]


def _known(request: Request) -> None:
    """Refuse a query parameter the listing does not take (a typo would filter nothing)."""
    for name, value in request.query_params.items():
        if name not in LIST_PARAMS:
            takes = ", ".join(LIST_PARAMS)
            msg = f"unknown query parameter; GET /api/v1/jobs takes {takes}"
            raise RequestValidationError(
                [{"loc": ("query", name), "msg": msg, "type": "extra_forbidden", "input": value}]
            )


def _refuse(name: str, value: object, msg: str) -> RequestValidationError:
    return RequestValidationError(
        [{"loc": ("query", name), "msg": msg, "type": "value_error", "input": value}]
    )


def _check_cursor(cursor: str | None) -> None:
    try:
        searching.decode_cursor(cursor)
    except ConfigError as exc:
        raise _refuse("cursor", cursor, str(exc)) from None


async def _by_offset(
    app: App, search: JobSearch, cursor: str | None, limit: int, offset: int
) -> JobPage:
    """The older paging by ``offset``: the plain filters only."""
    if cursor is not None or searching.needs_scan(search):
        name = "cursor" if cursor is not None else "text, since or until"
        msg = f"offset pages the plain listing only; with {name}, follow next_cursor instead"
        raise _refuse("offset", offset, msg)
    found = await asyncio.to_thread(
        app.broker.list_jobs,
        state=search.state,
        queue=search.queue,
        task=search.task,
        limit=limit,
        offset=offset,
    )
    more = len(found) == limit and offset + limit <= MAX_OFFSET
    return JobPage(
        jobs=[JobOut.of(j) for j in found],
        limit=limit,
        offset=offset,
        next_offset=offset + limit if more else None,
    )


def router(app: App) -> APIRouter:
    jobs = APIRouter(tags=["jobs"])
    missing: dict[int | str, dict[str, Any]] = {404: PROBLEM_RESPONSE}

    @jobs.get(
        "/jobs",
        response_model=JobPage,
        summary="List and search jobs, newest first, a page at a time",
        description=SEARCH_DOC,
    )
    async def list_jobs(
        request: Request,
        state: JobState | None = None,
        queue: Name = None,
        task: Name = None,
        limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
        offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
        cursor: Annotated[
            str | None,
            Query(min_length=1, max_length=40, description="a page's next_cursor"),
        ] = None,
        since: Annotated[
            float | None, Query(allow_inf_nan=False, description="enqueued at or after (POSIX s)")
        ] = None,
        until: Annotated[
            float | None, Query(allow_inf_nan=False, description="enqueued before (POSIX s)")
        ] = None,
        text: Annotated[
            str | None,
            Query(
                min_length=1,
                max_length=MAX_TEXT,
                description="found in the args or kwargs JSON or the error message "
                "(ASCII letters of either case)",
            ),
        ] = None,
    ) -> JobPage:
        _known(request)
        search = JobSearch(state, queue, task, since=since, until=until, text=text)
        if offset:
            return await _by_offset(app, search, cursor, limit, offset)
        _check_cursor(cursor)
        found = await asyncio.to_thread(app.broker.search_jobs, search, limit=limit, cursor=cursor)
        first = cursor is None and not searching.needs_scan(search)
        return JobPage(
            jobs=[JobOut.of(j) for j in found.jobs],
            limit=limit,
            offset=0,
            # the first page of a plain listing is also offset 0's: offsets go on from it
            next_offset=limit if first and found.next_cursor is not None else None,
            next_cursor=found.next_cursor,
            truncated=found.truncated,
        )

    @jobs.post(
        "/jobs",
        response_model=JobOut,
        status_code=201,
        summary="Enqueue a job of a task by name",
        responses={409: PROBLEM_RESPONSE, 413: PROBLEM_RESPONSE},
    )
    async def enqueue(new: EnqueueRequest, response: Response) -> JobOut:
        def run() -> Job:
            name = new.task
            if app.tasks:  # the server imported the app: the task must be one of it
                name = app.resolve_task_name(name)
                app.check_call(name, new.args, new.kwargs)
            return app.enqueue(name, new.args, new.kwargs, **new.options()).job

        job = await asyncio.to_thread(run)
        response.headers["Location"] = f"/api/v1/jobs/{job.id}"
        return _acted("api.job_enqueued", job)

    @jobs.get("/jobs/{job_id}", response_model=JobOut, summary="One job", responses=missing)
    async def get_job(job_id: JobId) -> JobOut:
        job = await asyncio.to_thread(app.broker.get, job_id)
        if job is None:
            raise JobNotFoundError(f"no job with id {job_id!r}; list jobs with GET /api/v1/jobs")
        return JobOut.of(job, attempts=True)

    acted: dict[int | str, dict[str, Any]] = {404: PROBLEM_RESPONSE, 409: PROBLEM_RESPONSE}

    @jobs.post(
        "/jobs/{job_id}/retry",
        response_model=JobOut,
        summary="Run a dead or cancelled job again",
        responses=acted,
    )
    async def retry(job_id: JobId) -> JobOut:
        return _acted("api.job_retried", await asyncio.to_thread(app.broker.retry, job_id))

    @jobs.post(
        "/jobs/{job_id}/cancel",
        response_model=JobOut,
        summary="Cancel a pending job, or flag a running one for its worker",
        responses=acted,
    )
    async def cancel(job_id: JobId) -> JobOut:
        return _acted("api.job_cancelled", await asyncio.to_thread(app.broker.cancel, job_id))

    return jobs
