"""Retry policy: exponential backoff with full jitter and a cap."""

from __future__ import annotations

import random
from dataclasses import dataclass

from faena.errors import ConfigError


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """``retries`` more attempts after the first; delay ``uniform(0, min(cap, base * 2**n))``.

    ``n`` is the number of attempts already made minus one, so the first retry waits up to
    ``base`` seconds, the second up to ``2 * base``, and so on, never more than ``cap``.
    """

    retries: int = 3
    backoff_base: float = 1.0
    backoff_cap: float = 300.0
    jitter: bool = True

    def __post_init__(self) -> None:
        if self.retries < 0:
            raise ConfigError(f"retries must be >= 0, got {self.retries}")
        if self.backoff_base < 0 or self.backoff_cap < 0:
            raise ConfigError(
                f"backoff_base and backoff_cap must be >= 0, got "
                f"{self.backoff_base} and {self.backoff_cap}"
            )

    @property
    def max_attempts(self) -> int:
        return self.retries + 1

    def ceiling(self, attempts_made: int) -> float:
        """The largest delay before the next attempt, after ``attempts_made`` attempts."""
        exponent = max(attempts_made - 1, 0)
        if exponent > 60:
            return self.backoff_cap
        return float(min(self.backoff_cap, self.backoff_base * (2**exponent)))

    def delay(self, attempts_made: int, rng: random.Random | None = None) -> float:
        top = self.ceiling(attempts_made)
        if not self.jitter:
            return top
        return (rng or random).uniform(0.0, top)

    def should_retry(self, attempts_made: int) -> bool:
        return attempts_made < self.max_attempts
