"""The demo's load: an ETL + data-quality night, as a plan of timed steps.

Each day of data is 6 tables x (extract, load, 3 checks). The first days arrive as a nightly
trickle, a table at a time; then a backfill lands every remaining day at once: the burst
that makes the autoscaler scale out (and back in once it is done). :func:`demo_load` is the
one place that shapes the load: swap it to drive another one.
"""

from __future__ import annotations

from dataclasses import dataclass

TABLES = ("users", "orders", "payments", "inventory", "sessions", "invoices")
DQ_RULES = ("row_count", "null_ratio", "schema_drift")
#: days that trickle in before the backfill, and the seconds between two of their tables
TRICKLE_DAYS = 2
TRICKLE_EVERY = 0.5

Job = tuple[str, list[object]]


@dataclass(frozen=True)
class LoadStep:
    """Jobs enqueued ``at`` seconds after the platform is up."""

    at: float
    label: str
    jobs: tuple[Job, ...]


def day_of(d: int) -> str:
    return f"2026-11-{d:02d}"


def table_jobs(table: str, day: str) -> list[Job]:
    jobs: list[Job] = [("etl.extract", [table, day]), ("etl.load", [table, day])]
    jobs += [("dq.check", [table, day, rule]) for rule in DQ_RULES]
    return jobs


def build_load(days: int) -> list[Job]:
    """Every job of ``days`` days, in order (what :func:`demo_load` spreads over time)."""
    return [j for d in range(1, days + 1) for t in TABLES for j in table_jobs(t, day_of(d))]


def demo_load(days: int) -> list[LoadStep]:
    """The trickle of the first days (a table every half second), then the burst."""
    trickle = min(TRICKLE_DAYS, days - 1)
    steps: list[LoadStep] = []
    at = 0.0
    for d in range(1, trickle + 1):
        for table in TABLES:
            steps.append(LoadStep(at, f"{day_of(d)} {table}", tuple(table_jobs(table, day_of(d)))))
            at += TRICKLE_EVERY
    backfill = tuple(
        j for d in range(trickle + 1, days + 1) for t in TABLES for j in table_jobs(t, day_of(d))
    )
    if backfill:
        first, last = day_of(trickle + 1), day_of(days)
        steps.append(LoadStep(at, f"backfill {first}..{last} (burst)", backfill))
    return steps
