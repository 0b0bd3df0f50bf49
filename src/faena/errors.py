"""Every error faena raises on purpose derives from :class:`FaenaError`.

Each message says what happened, with the values involved, and what to do about it.
"""

from __future__ import annotations


class FaenaError(Exception):
    """Root of faena's errors."""


class ConfigError(FaenaError, ValueError):
    """A setting has a value faena cannot use (a ``ValueError`` too, as Python's own are)."""


class InvalidValueError(ConfigError):
    """A job option or an identifier (task, queue, pool, idempotency key, worker id, job id,
    filter) has a value faena refuses, before anything is written. ``field`` names it and
    ``value`` is what was given."""

    def __init__(self, message: str, *, field: str, value: object) -> None:
        super().__init__(message)
        self.field = field
        self.value = value


class BrokerURLError(ConfigError):
    """A broker URL is malformed or names an unknown scheme."""


class BrokerError(FaenaError):
    """The broker's store failed; the driver's error is the ``__cause__``."""


class StoreNotFoundError(BrokerError):
    """The store a broker URL names does not exist, and the command creates none."""


class SchemaError(BrokerError):
    """The store is not faena's, or was written by a newer faena."""


class PayloadError(FaenaError):
    """Job arguments or results are not JSON, or are too large."""


class UnknownQueueError(FaenaError):
    """A queue name is not acceptable."""


class UnknownPoolError(FaenaError):
    """A job names a pool the broker does not know."""


class UnknownTaskError(FaenaError):
    """A job names a task that is not registered in the app."""


class JobNotFoundError(FaenaError):
    """No job has the given id."""


class InvalidTransitionError(FaenaError):
    """An operation does not apply to a job in its current state."""


class JobFailedError(FaenaError):
    """``job.wait()`` found the job dead or cancelled."""

    def __init__(self, message: str, *, error_type: str | None, error_message: str | None) -> None:
        super().__init__(message)
        self.error_type = error_type
        self.error_message = error_message


class WaitTimeoutError(FaenaError, TimeoutError):
    """``job.wait()`` gave up before the job reached a terminal state."""


class CorruptJobError(FaenaError):
    """A stored job record holds a value faena cannot read (edited by hand, a bad migration,
    a disk fault). The job is made dead by itself; the others are not touched."""

    def __init__(self, message: str, *, job_id: str, field: str, value: object) -> None:
        super().__init__(message)
        self.job_id = job_id
        self.field = field
        self.value = value


class MiddlewareError(FaenaError):
    """A middleware's ``around_execute`` raised an exception of its own (not the job's): the
    attempt fails as if the job had raised it, and the message names the middleware."""

    def __init__(self, message: str, *, middleware: str, hook: str) -> None:
        super().__init__(message)
        self.middleware = middleware
        self.hook = hook
