"""How long a worker waits before it calls a failing broker again: capped, jittered, real.

``ceiling(n) = min(cap, base * 2 ** (n - 1))`` after ``n`` failed calls in a row, and the
wait is drawn from ``[ceiling / 2, ceiling]`` ("equal jitter"): workers that lost the same
broker spread out, and none comes back sooner than half the ceiling (no hot loop, whatever
the random draw). Pure: the randomness is injected; any count, however large, is fine.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from faena.errors import ConfigError


@dataclass(frozen=True, slots=True)
class Backoff:
    base: float = 0.1
    cap: float = 5.0

    def __post_init__(self) -> None:
        if not 0 < self.base <= self.cap:
            raise ConfigError(
                f"backoff needs 0 < base <= cap, got base={self.base} and cap={self.cap}"
            )

    def ceiling(self, failures: int) -> float:
        """The longest wait after ``failures`` failed calls in a row (at least one)."""
        exponent = max(failures - 1, 0)
        limit = int(self.cap / self.base).bit_length() + 1  # beyond it, the cap wins anyway
        if exponent >= limit:
            return self.cap
        return min(self.cap, self.base * 2.0**exponent)

    def delay(self, failures: int, rng: random.Random) -> float:
        """The wait after ``failures`` failed calls in a row: in ``[ceiling/2, ceiling]``."""
        top = self.ceiling(failures)
        return rng.uniform(top / 2, top)
