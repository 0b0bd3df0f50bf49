"""``GET /api/v1/stats``: attempt endings per minute, run and wait time percentiles, and the
jobs by state, all read from the store (``job_stats``, ``count_by_state``), so every server
replica answers the same."""

from __future__ import annotations

import asyncio
from dataclasses import asdict
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.exceptions import RequestValidationError

from faena.app import App
from faena.core.states import JobState
from faena.core.stats import MAX_MINUTES
from faena.web.schemas import MinuteOut, PercentilesOut, StatsOut


def router(app: App) -> APIRouter:
    stats = APIRouter(tags=["stats"])

    @stats.get(
        "/stats",
        response_model=StatsOut,
        summary="Throughput, failures and run / wait times over a window; jobs by state",
    )
    async def job_stats(
        request: Request,
        minutes: Annotated[
            int, Query(ge=1, le=MAX_MINUTES, description="whole minutes, ending now")
        ] = 60,
        queue: Annotated[
            str | None, Query(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")
        ] = None,
    ) -> StatsOut:
        for name, value in request.query_params.items():
            if name not in ("minutes", "queue"):
                msg = "unknown query parameter; GET /api/v1/stats takes minutes, queue"
                raise RequestValidationError(
                    [
                        {
                            "loc": ("query", name),
                            "msg": msg,
                            "type": "extra_forbidden",
                            "input": value,
                        }
                    ]
                )

        def run() -> StatsOut:
            got = app.broker.job_stats(minutes=minutes, queue=queue)
            states = dict.fromkeys((s.value for s in JobState), 0)
            for (q, state), n in app.broker.count_by_state().items():
                if queue is None or q == queue:
                    states[state.value] += n
            return StatsOut(
                since=got.since,
                until=got.until,
                queue=got.queue,
                minutes=[MinuteOut(**asdict(m)) for m in got.minutes],
                run_time=PercentilesOut(**asdict(got.run_time)),
                wait_time=PercentilesOut(**asdict(got.wait_time)),
                sample_limit=got.sample_limit,
                states=states,
            )

        return await asyncio.to_thread(run)

    return stats
