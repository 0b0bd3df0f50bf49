"""Task options: how a registered callable runs."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from faena.core.pools import DEFAULT_POOL, check_name
from faena.core.retry import RetryPolicy
from faena.errors import ConfigError

DEFAULT_QUEUE = "default"


class Isolation(StrEnum):
    ASYNC = "async"
    THREAD = "thread"
    PROCESS = "process"


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
        check_name("queue", self.queue)
        check_name("pool", self.pool)
        if self.pool_slots < 1:
            raise ConfigError(f"task {self.name}: pool_slots must be >= 1, got {self.pool_slots}")
        if self.timeout is not None and self.timeout <= 0:
            raise ConfigError(f"task {self.name}: timeout must be > 0 seconds, got {self.timeout}")

    def retries_on(self, exc: BaseException) -> bool:
        return isinstance(exc, self.retry_on)


def normalize_retry_on(
    retry_on: type[BaseException] | Sequence[type[BaseException]] | None,
) -> tuple[type[BaseException], ...]:
    if retry_on is None:
        return (Exception,)
    if isinstance(retry_on, type):
        return (retry_on,)
    return tuple(retry_on)
