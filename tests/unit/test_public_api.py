"""The public API: the names ``faena`` exports, and what ``Task.enqueue`` takes."""

from __future__ import annotations

import pytest

import faena
from faena.core.options import ENQUEUE_OPTION_NAMES, TASK_OPTION_NAMES
from faena.errors import ConfigError

EXPORTED = [
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


def test_the_exported_names_are_pinned() -> None:
    assert sorted(faena.__all__) == EXPORTED, "a change of faena.__all__ is a change of the API"
    for name in faena.__all__:
        assert getattr(faena, name) is not None


def test_option_names_have_one_source() -> None:
    app = faena.App(broker="memory://")
    with pytest.raises(ConfigError, match="unknown task option") as task_error:
        app.task(retires=3)(print)  # type: ignore[call-overload]
    for name in TASK_OPTION_NAMES:
        assert name in str(task_error.value)
    with pytest.raises(ConfigError, match="unknown enqueue option") as enqueue_error:
        app.enqueue("t", [], {}, idempotency="k")  # type: ignore[call-arg]
    for name in ENQUEUE_OPTION_NAMES:
        assert name in str(enqueue_error.value)


def test_enqueue_takes_arguments_and_says_where_options_go() -> None:
    app = faena.App(broker="memory://")

    @app.task
    def load(table: str, day: str) -> None: ...

    @app.task
    def ranked(item: str, priority: int) -> None: ...

    with pytest.raises(ConfigError, match=r"enqueue_with\(args, kwargs, idempotency_key=") as err:
        load.enqueue("users", "d1", idempotency_key="k")  # type: ignore[call-arg]
    assert "load does not take" in str(err.value)
    assert app.broker.count_by_state() == {}  # nothing was enqueued
    job = ranked.enqueue("x", priority=3)  # an argument that shares an option's name
    assert job.job.kwargs == {"priority": 3} and job.job.priority == 0
    keyed = load.enqueue_with(["users", "d1"], idempotency_key="k")
    assert load.enqueue_with(["users", "d1"], idempotency_key="k").id == keyed.id
