"""The demo's tasks: ETL through ``etl_pool`` (24 slots), data quality through ``dq_pool`` (8),
and the pipeline ``etl_daily`` that runs them for one day: per table, extract, then load, then
three checks (30 steps a day, the hand-offs in the broker).

The broker comes from ``FAENA_DEMO_BROKER`` so the demo's worker processes share one file.
"""

from __future__ import annotations

import hashlib
import os
import random
import time

import faena
from faena.demo.load import DQ_RULES, TABLES
from faena.pipelines import Pipeline, param

app = faena.App(
    broker=os.environ.get("FAENA_DEMO_BROKER", "sqlite:///faena-demo.db"),
    pools={"etl_pool": 24, "dq_pool": 8},
    parallelism=64,
)


def _work(seconds: float) -> None:
    """Sleep most of the time (I/O-bound ETL) with a little real CPU work."""
    digest = b""
    for _ in range(200):
        digest = hashlib.sha256(digest).digest()
    time.sleep(seconds)


@app.task(name="etl.extract", queue="etl", pool="etl_pool", retries=3, backoff_base=0.2, timeout=30)
def extract(table: str, day: str) -> dict[str, object]:
    _work(random.uniform(0.05, 0.25))
    return {"table": table, "day": day, "rows": random.randint(1_000, 50_000)}


@app.task(
    name="etl.load",
    queue="etl",
    pool="etl_pool",
    pool_slots=2,
    retries=3,
    backoff_base=0.2,
    timeout=30,
)
def load(table: str, day: str) -> dict[str, object]:
    job = faena.current_job()
    # a flaky warehouse: a third of first attempts time out on the connection
    if job is not None and job.tries == 1 and random.random() < 0.33:
        raise ConnectionError(f"warehouse connection reset while loading {table}/{day}")
    _work(random.uniform(0.1, 0.4))
    return {"table": table, "day": day, "loaded": True}


@app.task(name="dq.check", queue="dq", pool="dq_pool", retries=2, backoff_base=0.2, timeout=30)
def check(table: str, day: str, rule: str) -> dict[str, object]:
    _work(random.uniform(0.05, 0.2))
    if rule == "schema_drift" and table == "payments" and day.endswith("-13"):
        # the poison job: bad data that no retry can fix
        raise ValueError(f"{table}/{day}: column 'amount' changed type from numeric to text")
    return {"table": table, "day": day, "rule": rule, "ok": True}


#: one run a day (its key is the day: a day is never run twice)
etl_daily = Pipeline(app, "etl_daily", key="{day}")
_day = param("day")
for _table in TABLES:
    _extracted = etl_daily.step(f"extract_{_table}", extract, kwargs={"table": _table, "day": _day})
    _loaded = etl_daily.step(
        f"load_{_table}", load, kwargs={"table": _table, "day": _day}, after=_extracted
    )
    for _rule in DQ_RULES:
        etl_daily.step(
            f"check_{_table}_{_rule}",
            check,
            kwargs={"table": _table, "day": _day, "rule": _rule},
            after=_loaded,
        )
