"""The demo's load: an ETL + data-quality night, as a plan of timed steps.

Each day of data is one run of the ``etl_daily`` pipeline (faena/demo/tasks.py): 6 tables x
(extract, then load, then 3 checks). The first days arrive as a nightly trickle, a day's run
at a time; then a backfill starts every remaining day's run at once: the burst that makes the
autoscaler scale out (and back in once it is done). :func:`demo_load` is the one place that
shapes the load: swap it to drive another one.
"""

from __future__ import annotations

from dataclasses import dataclass

TABLES = ("users", "orders", "payments", "inventory", "sessions", "invoices")
DQ_RULES = ("row_count", "null_ratio", "schema_drift")
#: days that trickle in before the backfill, and the seconds between two of their runs
TRICKLE_DAYS = 2
TRICKLE_EVERY = 3.0
#: the steps of one day's run
STEPS_PER_DAY = len(TABLES) * (2 + len(DQ_RULES))

Job = tuple[str, list[object]]


@dataclass(frozen=True)
class LoadStep:
    """The runs of ``days`` started ``at`` seconds after the platform is up."""

    at: float
    label: str
    days: tuple[str, ...]

    @property
    def jobs(self) -> tuple[Job, ...]:
        """Every job those runs make (each day's, table by table)."""
        return tuple(j for d in self.days for t in TABLES for j in table_jobs(t, d))


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
    """The trickle of the first days (a day's run every few seconds), then the burst."""
    trickle = min(TRICKLE_DAYS, days - 1)
    steps = [
        LoadStep((d - 1) * TRICKLE_EVERY, day_of(d), (day_of(d),)) for d in range(1, trickle + 1)
    ]
    backfill = tuple(day_of(d) for d in range(trickle + 1, days + 1))
    if backfill:
        label = f"backfill {backfill[0]}..{backfill[-1]} (burst)"
        steps.append(LoadStep(trickle * TRICKLE_EVERY, label, backfill))
    return steps
