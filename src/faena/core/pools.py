"""Pools (named slot budgets) and the admission rule shared by every broker."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from faena.errors import ConfigError, InvalidValueError

DEFAULT_POOL = "default_pool"
#: slots of ``default_pool`` when the app does not size it; Airflow's default is 128
DEFAULT_POOL_SLOTS = 128
_NAME = re.compile(r"[A-Za-z0-9_.:-]{1,64}")


def check_name(kind: str, name: str) -> str:
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise InvalidValueError(
            f"{kind} name {name!r} is not valid: use 1-64 letters, digits, '_', '-', '.', ':'",
            field=kind,
            value=name,
        )
    return name


def check_pools(pools: Mapping[str, int]) -> dict[str, int]:
    out: dict[str, int] = {}
    for name, size in pools.items():
        check_name("pool", name)
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise ConfigError(f"pool {name!r} size must be an integer >= 0, got {size!r}")
        out[name] = size
    return out


@dataclass(frozen=True, slots=True)
class Candidate:
    """What admission needs to know about a job waiting to run."""

    job_id: str
    pool: str
    pool_slots: int


@dataclass(slots=True)
class Admission:
    """Capacity left at the start of one atomic claim."""

    pool_free: dict[str, int]
    parallelism_free: int | None  # None: no global cap
    limit: int
    #: a runnable job was left waiting because its pool or the parallelism cap was full
    blocked: bool = False

    def admit(self, candidates: Iterable[Candidate]) -> list[str]:
        """Pick jobs in order; a job whose pool is full is skipped, not waited for.

        Skipping (rather than stopping) keeps one saturated pool from starving the others,
        as Airflow's scheduler does.
        """
        chosen: list[str] = []
        for cand in candidates:
            if len(chosen) >= self.limit:
                break
            if self.parallelism_free is not None and self.parallelism_free <= 0:
                self.blocked = True
                break
            free = self.pool_free.get(cand.pool, 0)
            if cand.pool_slots > free:
                self.blocked = True
                continue
            self.pool_free[cand.pool] = free - cand.pool_slots
            if self.parallelism_free is not None:
                self.parallelism_free -= 1
            chosen.append(cand.job_id)
        return chosen
