"""Messages for refused broker operations, shared by every backend so they read the same."""

from __future__ import annotations

from collections.abc import Iterable

from faena.core.job import Job


def unknown_pool(pool: str, pools: Iterable[str]) -> str:
    known = ", ".join(sorted(pools))
    return (
        f"pool {pool!r} does not exist (known pools: {known}); declare it with "
        f"faena.App(pools={{{pool!r}: SIZE}}) or 'faena pools set {pool} SIZE'"
    )


def no_such_job(job_id: str) -> str:
    return f"no job with id {job_id!r}; list jobs with 'faena jobs list'"


def retry_refused(job: Job) -> str:
    return (
        f"job {job.id} is {job.state.value}; only dead or cancelled jobs can be retried by hand "
        f"(a failed job retries by itself when its backoff ends)"
    )


def cancel_refused(job: Job) -> str:
    return (
        f"job {job.id} is {job.state.value} and cannot be cancelled; only scheduled, queued, "
        f"failed (awaiting retry) and running jobs can"
    )


def key_taken(job: Job, holder: str) -> str:
    return (
        f"job {job.id} cannot be retried: its idempotency key {job.idempotency_key!r} is now "
        f"held by job {holder}"
    )
