"""faena: durable background jobs with pools, leases, HPA-exact autoscaling and Camunda tasks."""

from faena.app import App
from faena.context import current_job
from faena.core.clock import Clock, ManualClock, SystemClock
from faena.core.job import ErrorInfo, Job
from faena.core.middleware import Attempt, Middleware, WorkerInfo
from faena.core.options import Isolation
from faena.core.retry import RetryPolicy
from faena.core.states import JobState
from faena.errors import (
    BrokerError,
    ConfigError,
    FaenaError,
    InvalidValueError,
    JobFailedError,
    JobNotFoundError,
    MiddlewareError,
    PayloadError,
    SchemaError,
    StoreNotFoundError,
    UnknownPoolError,
    UnknownTaskError,
    WaitTimeoutError,
)
from faena.task import JobHandle, Task
from faena.version import __version__ as __version__

__all__ = [
    "App",
    "Attempt",
    "BrokerError",
    "Clock",
    "ConfigError",
    "ErrorInfo",
    "FaenaError",
    "InvalidValueError",
    "Isolation",
    "Job",
    "JobFailedError",
    "JobHandle",
    "JobNotFoundError",
    "JobState",
    "ManualClock",
    "Middleware",
    "MiddlewareError",
    "PayloadError",
    "RetryPolicy",
    "SchemaError",
    "StoreNotFoundError",
    "SystemClock",
    "Task",
    "UnknownPoolError",
    "UnknownTaskError",
    "WaitTimeoutError",
    "WorkerInfo",
    "current_job",
]
