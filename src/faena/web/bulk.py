"""``/api/v1/bulk``: retry or cancel every job matching a filter, one bounded batch a call.

A call changes at most ``limit`` jobs (1 to 1000) in one broker call
(:meth:`~faena.brokers.protocol.OperatorStore.retry_matching` / ``cancel_matching``) and says
how many changed; ``more`` is true while a full batch was changed, so a client calls again
until it is false. Each call is logged as ``api.bulk_retried`` / ``api.bulk_cancelled``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from fastapi import APIRouter

from faena.app import App
from faena.core.states import JobState
from faena.web.jobs import audit
from faena.web.schemas import BulkCancel, BulkDone, BulkRetry


def router(app: App) -> APIRouter:
    bulk = APIRouter(tags=["jobs"])

    async def batch_of(
        change: Callable[..., int], event: str, batch: BulkRetry | BulkCancel
    ) -> BulkDone:
        state = None if batch.state is None else JobState(batch.state)
        changed = await asyncio.to_thread(
            change, state=state, queue=batch.queue, task=batch.task, limit=batch.limit
        )
        audit(event, changed=changed, **batch.filters())
        return BulkDone(changed=changed, more=changed == batch.limit)

    @bulk.post(
        "/bulk/retry",
        response_model=BulkDone,
        summary="Run again up to `limit` dead or cancelled jobs matching the filter",
    )
    async def retry_matching(batch: BulkRetry) -> BulkDone:
        return await batch_of(app.broker.retry_matching, "api.bulk_retried", batch)

    @bulk.post(
        "/bulk/cancel",
        response_model=BulkDone,
        summary="Cancel up to `limit` pending or running jobs matching the filter",
    )
    async def cancel_matching(batch: BulkCancel) -> BulkDone:
        return await batch_of(app.broker.cancel_matching, "api.bulk_cancelled", batch)

    return bulk


__all__ = ["router"]
