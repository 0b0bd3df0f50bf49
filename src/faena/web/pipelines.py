"""``/api/v1/pipelines`` and ``/api/v1/pipeline-runs``: the pipelines the app declares, their
runs, one run with each step's state, and a run's retry and cancel (logged as
``api.run_retried`` / ``api.run_cancelled``)."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field

from faena.app import App
from faena.core.dependencies import RunState, TriggerRule
from faena.core.runs import NAME, RunRecord
from faena.core.states import JobState
from faena.errors import JobNotFoundError
from faena.pipelines import declared
from faena.web.jobs import audit
from faena.web.problems import PROBLEM_RESPONSE
from faena.web.schemas import DEFAULT_LIMIT, MAX_LIMIT, MAX_NAME, MAX_OFFSET

RUN_PARAMS = ("limit", "offset")


class DeclaredStep(BaseModel):
    name: str
    task: str
    upstreams: list[str]
    rule: TriggerRule
    results: bool


class PipelineOut(BaseModel):
    name: str
    steps: list[DeclaredStep]


class StepOut(BaseModel):
    name: str
    job_id: str
    upstreams: list[str]
    rule: TriggerRule
    results: bool
    state: JobState | None
    waiting: bool = Field(description="waits for its upstreams (scheduled, not due)")
    error_type: str | None
    enqueued_at: float | None
    run_at: float | None
    started_at: float | None
    finished_at: float | None


class RunOut(BaseModel):
    id: str
    pipeline: str
    key: str
    params: str
    state: RunState
    created_at: float
    finished_at: float | None
    steps: list[StepOut]

    @classmethod
    def of(cls, run: RunRecord) -> RunOut:
        return cls(
            id=run.id,
            pipeline=run.pipeline,
            key=run.key,
            params=run.params_json,
            state=run.state,
            created_at=run.created_at,
            finished_at=run.finished_at,
            steps=[
                StepOut(
                    name=s.name,
                    job_id=s.job_id,
                    upstreams=list(s.upstreams),
                    rule=s.rule,
                    results=s.results,
                    state=s.state,
                    waiting=s.waiting,
                    error_type=s.error_type,
                    # a waiting step's run_at is BLOCKED_AT, which JSON carries as is
                    enqueued_at=s.enqueued_at,
                    run_at=s.run_at,
                    started_at=s.started_at,
                    finished_at=s.finished_at,
                )
                for s in run.steps
            ],
        )


class RunPage(BaseModel):
    runs: list[RunOut]
    limit: int
    offset: int
    next_offset: int | None


PipelineName = Annotated[
    str, Path(min_length=1, max_length=100, pattern=NAME.pattern, description="its name")
]
RunId = Annotated[str, Path(min_length=1, max_length=MAX_NAME, description="the run's id")]


def _known(request: Request) -> None:
    for name, value in request.query_params.items():
        if name not in RUN_PARAMS:
            msg = f"unknown query parameter; this listing takes {', '.join(RUN_PARAMS)}"
            raise RequestValidationError(
                [{"loc": ("query", name), "msg": msg, "type": "extra_forbidden", "input": value}]
            )


def _acted(event: str, run: RunRecord) -> RunOut:
    audit(event, run_id=run.id, pipeline=run.pipeline, state=run.state.value)
    return RunOut.of(run)


def router(app: App) -> APIRouter:
    api = APIRouter(tags=["pipelines"])
    missing: dict[int | str, dict[str, Any]] = {404: PROBLEM_RESPONSE}

    @api.get(
        "/pipelines",
        response_model=list[PipelineOut],
        summary="The pipelines the server's app declares",
    )
    async def list_pipelines() -> list[PipelineOut]:
        return [
            PipelineOut(
                name=p.name,
                steps=[
                    DeclaredStep(
                        name=s.name,
                        task=s.task,
                        upstreams=[u.name for u in s.upstreams],
                        rule=s.rule,
                        results=s.results,
                    )
                    for s in p.ordered()
                ],
            )
            for p in declared(app).values()
        ]

    @api.get(
        "/pipelines/{name}/runs", response_model=RunPage, summary="Runs of a pipeline, newest first"
    )
    async def list_runs(
        request: Request,
        name: PipelineName,
        limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
        offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
    ) -> RunPage:
        _known(request)
        found = await asyncio.to_thread(
            app.broker.list_runs, pipeline=name, limit=limit, offset=offset
        )
        more = len(found) == limit and offset + limit <= MAX_OFFSET
        return RunPage(
            runs=[RunOut.of(r) for r in found],
            limit=limit,
            offset=offset,
            next_offset=offset + limit if more else None,
        )

    @api.get("/pipeline-runs/{run_id}", response_model=RunOut, summary="One run", responses=missing)
    async def get_run(run_id: RunId) -> RunOut:
        run = await asyncio.to_thread(app.broker.get_run, run_id)
        if run is None:
            raise JobNotFoundError(f"no pipeline run {run_id!r}")
        return RunOut.of(run)

    @api.post(
        "/pipeline-runs/{run_id}/retry",
        response_model=RunOut,
        summary="Run a run's failed and skipped steps again, keeping the succeeded ones",
        responses=missing,
    )
    async def retry_run(run_id: RunId) -> RunOut:
        return _acted("api.run_retried", await asyncio.to_thread(app.broker.retry_run, run_id))

    @api.post(
        "/pipeline-runs/{run_id}/cancel",
        response_model=RunOut,
        summary="Cancel a run's pending steps and flag its running ones",
        responses=missing,
    )
    async def cancel_run(run_id: RunId) -> RunOut:
        return _acted("api.run_cancelled", await asyncio.to_thread(app.broker.cancel_run, run_id))

    return api
