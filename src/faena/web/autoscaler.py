"""``GET /api/v1/autoscaler``: the state of every autoscaler that reports to this store.

``faena autoscale`` and ``faena up`` write their latest decision after each sync
(:mod:`faena.autoscale.state`); this route reads it back from the store, so every server
replica shows the same: the HPA's desired count beside the workers ready, the metrics against
their targets, the HPA's reason and the rule that held the count back. A record whose reports
stopped for a few sync periods is ``stale`` (the autoscaler is gone or cannot reach the
store).
"""

from __future__ import annotations

import asyncio
import dataclasses

from fastapi import APIRouter
from pydantic import BaseModel, Field

from faena.app import App


class AutoscalerMetricOut(BaseModel):
    metric: str = Field(description="kind/name, e.g. External/celery_queue_length")
    current: str | None = Field(
        description="its value as the HPA reports it (per worker for AverageValue, a "
        "percentage for Utilization); null when it could not be read"
    )
    target: str | None = Field(description="the manifest's target (10, 250m, 80%)")
    proposal: int | None = Field(description="the workers this metric alone asks for")
    error: str | None = Field(description="why it could not be read, if it could not")


class AutoscalerOut(BaseModel):
    name: str = Field(description="the HPA's scaleTargetRef name (the supervised pool)")
    host: str
    pid: int
    desired: int = Field(description="the workers the autoscaler wants now")
    current: int = Field(description="worker processes started and not draining")
    min_replicas: int
    max_replicas: int
    metric_desired: int | None = Field(
        description="what the metrics asked for, before tolerance, windows, policies and bounds"
    )
    reason: str = Field(
        description="the HPA's reason: DesiredWithinRange, ScaleUpLimit, ScaleDownLimit, "
        "TooManyReplicas, TooFewReplicas, FailedGetMetrics, ScalingDisabled, or Starting "
        "before the first sync"
    )
    limited_by: str | None = Field(
        description="the rule that held the count back, if one did: a behaviour policy, a "
        "stabilization window, minReplicas / maxReplicas, the tolerance"
    )
    metrics: list[AutoscalerMetricOut]
    last_scale_at: float | None = Field(description="when it last changed the count")
    updated_at: float = Field(description="when the store received its last report")
    stale: bool = Field(description="no report for longer than stale_after: shown as stale")
    stale_after: float = Field(description="seconds without a report before it is stale")


class Autoscalers(BaseModel):
    autoscalers: list[AutoscalerOut]


def router(app: App) -> APIRouter:
    scaling = APIRouter(tags=["workers"])

    @scaling.get(
        "/autoscaler",
        response_model=Autoscalers,
        summary="Each autoscaler's state: desired vs actual workers, and why",
    )
    async def autoscaler() -> Autoscalers:
        return await asyncio.to_thread(lambda: _read(app))

    return scaling


def _read(app: App) -> Autoscalers:
    now = app.clock.now()
    return Autoscalers(
        autoscalers=[
            AutoscalerOut(
                **dataclasses.asdict(r.report), updated_at=r.updated_at, stale=r.stale_at(now)
            )
            for r in app.broker.list_autoscalers()
        ]
    )


__all__ = ["Autoscalers", "router"]
