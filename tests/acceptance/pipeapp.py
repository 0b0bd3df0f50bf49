"""The pipeline app of the acceptance tests: a 20-step ETL DAG through ``etl_pool`` and
``dq_pool`` whose steps record their start and end (``tests.acceptance.recording``).

Configured by environment like ``accapp``: ``ACC_BROKER``, ``ACC_RECORD``, ``ACC_LEASE``,
``ACC_STEP_SECONDS`` (how long each step takes)."""

from __future__ import annotations

import os
import time
from typing import Any

import faena
from faena.pipelines import Pipeline, param
from tests.acceptance import recording

app = faena.App(
    broker=os.environ.get("ACC_BROKER", "sqlite:///acc.db"),
    pools={"etl_pool": 3, "dq_pool": 1},
    lease_seconds=float(os.environ.get("ACC_LEASE", "30")),
)


def _work() -> None:
    recording.record("start", os.environ["ACC_RECORD"])
    time.sleep(float(os.environ.get("ACC_STEP_SECONDS", "0.5")))
    recording.record("end", os.environ["ACC_RECORD"])


@app.task(name="etl", queue="acc", pool="etl_pool", retries=2, backoff_base=0.05)
def etl(day: str, part: str) -> str:
    _work()
    return f"{part}@{day}"


@app.task(name="dq", queue="acc", pool="dq_pool", retries=2, backoff_base=0.05)
def dq(part: str, upstream: dict[str, Any]) -> int:
    _work()
    return len(upstream)


daily = Pipeline(app, "etl_daily", key="{day}")
day = param("day")
parts = "abcd"
extract = [daily.step(f"extract_{p}", etl, kwargs={"day": day, "part": p}) for p in parts]
clean = [
    daily.step(f"clean_{p}", etl, kwargs={"day": day, "part": p}, after=e)
    for p, e in zip(parts, extract, strict=True)
]
checks = [
    daily.step(f"dq_{p}", dq, kwargs={"part": p}, after=c, results=True)
    for p, c in zip(parts, clean, strict=True)
]
join = daily.step("join", etl, kwargs={"day": day, "part": "all"}, after=checks)
aggregates = [
    daily.step(f"aggregate_{n}", etl, kwargs={"day": day, "part": f"agg{n}"}, after=join)
    for n in range(4)
]
dq_final = daily.step("dq_final", dq, kwargs={"part": "final"}, after=aggregates, results=True)
publish = daily.step("publish", etl, kwargs={"day": day, "part": "publish"}, after=dq_final)
daily.step("report", etl, kwargs={"day": day, "part": "report"}, after=publish, rule="all_done")
