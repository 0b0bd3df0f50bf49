"""Bulk actions: retry or cancel every job matching a filter, a bounded batch per call.

Every backend changes each job by the per-job rules of ``retry`` and ``cancel``. The SQL
backends do a batch in one transaction (``SQLiteOperators``, ``PostgresOperators``, with
:func:`check_batch`, :func:`retry_states` and :func:`cancel_states` from here); memory and
Redis use :class:`BulkActions`, built on the contract's own ``list_jobs``, ``retry`` and
``cancel``: each job changes atomically, a batch is not one atomic step. A job that changed
under the batch (finished, retried or cancelled by someone else) or that ``retry`` refuses
(its idempotency key is taken by a live job) is left alone and not counted. Callers loop
until a call returns 0.
"""

from __future__ import annotations

from typing import Protocol

from faena.core import checks
from faena.core.job import Job
from faena.core.states import CANCELLABLE, LEASED, RETRYABLE, JobState, in_order
from faena.errors import ConfigError, InvalidTransitionError, JobNotFoundError

#: the most jobs one bulk call changes
MAX_BATCH = 1000
#: how many candidates one listing reads
_PAGE = 200


class _Acts(Protocol):
    def list_jobs(
        self,
        *,
        state: JobState | None = None,
        queue: str | None = None,
        task: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[Job]: ...

    def retry(self, job_id: str) -> Job: ...

    def cancel(self, job_id: str) -> Job: ...


def check_batch(state: JobState | None, queue: str | None, task: str | None, limit: int) -> None:
    """The filters as ``list_jobs`` checks them, and ``1 <= limit <= MAX_BATCH``."""
    checks.check_filters(state, queue, task)
    if type(limit) is not int or not 1 <= limit <= MAX_BATCH:
        raise ConfigError(
            f"limit {limit!r} is not valid: a bulk action changes 1 to {MAX_BATCH} jobs a "
            f"call; pass a limit in that range and call again until it returns 0"
        )


def _matching(states: frozenset[JobState], state: JobState | None) -> list[JobState]:
    """The states to look in: those of ``states`` the filter allows."""
    return [s for s in in_order(states) if state is None or s is state]


def retry_states(state: JobState | None) -> list[JobState]:
    """The states ``retry_matching`` looks in for the ``state`` filter (none: nothing to do)."""
    return _matching(RETRYABLE, state)


def cancel_states(state: JobState | None) -> list[JobState]:
    """The states ``cancel_matching`` looks in for the ``state`` filter."""
    return _matching(CANCELLABLE, state)


class BulkActions:
    """The bulk side of :class:`~faena.brokers.protocol.OperatorStore`, for any broker."""

    def retry_matching(
        self: _Acts,
        *,
        state: JobState | None = None,
        queue: str | None = None,
        task: str | None = None,
        limit: int = MAX_BATCH,
    ) -> int:
        """Retry up to ``limit`` ``dead`` or ``cancelled`` jobs matching the filters (others
        are left alone); how many were retried."""
        check_batch(state, queue, task, limit)
        changed = 0
        for each in _matching(RETRYABLE, state):
            skipped = 0
            while changed < limit:
                page = self.list_jobs(
                    state=each, queue=queue, task=task, limit=_PAGE, offset=skipped
                )
                for job in page:
                    if changed >= limit:
                        break
                    try:
                        self.retry(job.id)
                        changed += 1
                    except (InvalidTransitionError, JobNotFoundError):
                        skipped += 1
                if len(page) < _PAGE:
                    break
        return changed

    def cancel_matching(
        self: _Acts,
        *,
        state: JobState | None = None,
        queue: str | None = None,
        task: str | None = None,
        limit: int = MAX_BATCH,
    ) -> int:
        """Cancel up to ``limit`` jobs matching the filters: pending ones end ``cancelled``
        now, running ones not flagged yet are flagged for their worker (finished ones are
        left alone); how many changed."""
        check_batch(state, queue, task, limit)
        changed = 0
        for each in _matching(CANCELLABLE, state):
            skipped = 0
            while changed < limit:
                page = self.list_jobs(
                    state=each, queue=queue, task=task, limit=_PAGE, offset=skipped
                )
                for job in page:
                    if changed >= limit:
                        break
                    if job.state in LEASED and job.cancel_requested:
                        skipped += 1
                        continue
                    try:
                        new = self.cancel(job.id)
                    except (InvalidTransitionError, JobNotFoundError):
                        skipped += 1
                        continue
                    if new.state in LEASED:
                        skipped += 1  # flagged, but still listed among the running
                    changed += 1
                if len(page) < _PAGE:
                    break
        return changed
