"""The worker's middleware chain: the events' own first, then the app's, then the worker's.

Kept apart from the loop (:mod:`faena.worker.runtime` only calls the chain's hooks): a hook
that raises is published as ``worker.middleware_error`` (see
:meth:`faena.worker.events.WorkerEvents.middleware_failed`), never raised into the loop.
"""

from __future__ import annotations

from collections.abc import Sequence

from faena.core.middleware import Chain, Middleware
from faena.worker.events import JobEvents, WorkerEvents


def worker_chain(
    events: WorkerEvents,
    app_middleware: Sequence[Middleware],
    worker_middleware: Sequence[Middleware],
) -> tuple[Chain, JobEvents]:
    """The chain a worker calls, outermost first: :class:`JobEvents` (so a job's log lines
    and metrics frame what the others do), the app's middleware, the worker's. ``events``
    reports each attempt through it from now on."""
    job_events = JobEvents(events)
    chain = Chain(
        [job_events, *app_middleware, *worker_middleware], on_error=events.middleware_failed
    )
    events.middleware = chain
    return chain, job_events
