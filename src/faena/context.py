"""The job being run, for code inside a task: ``faena.current_job()``."""

from __future__ import annotations

from contextvars import ContextVar

from faena.core.job import Job

_current: ContextVar[Job | None] = ContextVar("faena_current_job", default=None)


def current_job() -> Job | None:
    """The job whose attempt the calling code runs in (``None`` outside a job)."""
    return _current.get()


def set_current_job(job: Job | None) -> None:
    _current.set(job)
