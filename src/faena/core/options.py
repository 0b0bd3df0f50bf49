"""Task options: how a registered callable runs."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Literal, TypedDict

from faena.core.checks import check_pool_slots, check_priority, check_text, check_timeout
from faena.core.pools import DEFAULT_POOL, check_name
from faena.core.retry import RetryPolicy

DEFAULT_QUEUE = "default"


class Isolation(StrEnum):
    ASYNC = "async"
    THREAD = "thread"
    PROCESS = "process"


RetryOn = type[BaseException] | Sequence[type[BaseException]] | None


class TaskOptionArgs(TypedDict, total=False):
    """The keyword options of ``@app.task(...)``: the one list of their names and types."""

    name: str
    queue: str
    pool: str
    pool_slots: int
    priority: int
    retries: int
    retry_on: RetryOn
    timeout: float | None
    isolation: Isolation | Literal["async", "thread", "process"] | None
    backoff_base: float
    backoff_cap: float


class EnqueueOptions(TypedDict, total=False):
    """The options of one enqueue (``enqueue_with``, ``enqueue_many``, ``App.enqueue``), which
    override the task's own for that job: the one list of their names and types."""

    queue: str
    priority: int
    pool: str
    pool_slots: int
    retries: int
    timeout: float | None
    run_at: float | None
    delay: float | None
    idempotency_key: str | None


TASK_OPTION_NAMES = TaskOptionArgs.__optional_keys__
ENQUEUE_OPTION_NAMES = EnqueueOptions.__optional_keys__


@dataclass(frozen=True, slots=True)
class TaskOptions:
    name: str
    queue: str = DEFAULT_QUEUE
    pool: str = DEFAULT_POOL
    pool_slots: int = 1
    priority: int = 0
    timeout: float | None = None
    isolation: Isolation | None = None  # None: async for coroutines, thread otherwise
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    retry_on: tuple[type[BaseException], ...] = (Exception,)

    def __post_init__(self) -> None:
        check_text("task name", self.name)
        check_name("queue", self.queue)
        check_name("pool", self.pool)
        check_pool_slots(self.name, self.pool_slots)
        check_priority(self.name, self.priority)
        check_timeout(self.name, self.timeout)

    def retries_on(self, exc: BaseException) -> bool:
        return isinstance(exc, self.retry_on)


def normalize_retry_on(retry_on: RetryOn) -> tuple[type[BaseException], ...]:
    if retry_on is None:
        return (Exception,)
    if isinstance(retry_on, type):
        return (retry_on,)
    return tuple(retry_on)
