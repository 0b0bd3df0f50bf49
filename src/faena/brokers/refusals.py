"""Messages for refused broker operations, shared by every backend so they read the same."""

from __future__ import annotations

from collections.abc import Iterable

from faena.core.job import Job
from faena.core.lifecycle import cancel_refused, retry_refused

__all__ = ["cancel_refused", "key_taken", "no_such_job", "retry_refused", "unknown_pool"]


def unknown_pool(pool: str, pools: Iterable[str]) -> str:
    known = ", ".join(sorted(pools))
    return (
        f"pool {pool!r} does not exist (known pools: {known}); declare it with "
        f"faena.App(pools={{{pool!r}: SIZE}}) or 'faena pools set {pool} SIZE'"
    )


def no_such_job(job_id: str) -> str:
    return f"no job with id {job_id!r}; list jobs with 'faena jobs list'"


def key_taken(job: Job, holder: str) -> str:
    return (
        f"job {job.id} cannot be retried: its idempotency key {job.idempotency_key!r} is now "
        f"held by job {holder}"
    )


def no_such_run(run_id: str) -> str:
    return f"no pipeline run {run_id} (a typo, or its records were pruned)"
