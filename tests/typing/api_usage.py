"""Code that type-checks as faena's users write it, and mistakes the types must catch.

``tests/integration/test_public_typing.py`` runs mypy (strict) on this file. A line that must
be refused carries ``# type: ignore[CODE]``: strict mypy reports an ignore that is not needed,
so if faena's types stopped refusing that line, the check fails.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

import faena

T = TypeVar("T")


class Throttle(faena.Middleware):
    def before_claim(self, queues: Sequence[str], limit: int) -> int:
        return min(limit, 2)

    def around_execute(self, job: faena.Job, call: Callable[[], T]) -> T:
        return call()

    def after_execute(self, attempt: faena.Attempt) -> None:
        assert attempt.outcome.state in faena.JobState


class Wrong(faena.Middleware):
    def before_claim(self, queues: Sequence[str], limit: int) -> str:  # type: ignore[override]
        return "all"


app = faena.App(broker="memory://", pools={"etl_pool": 24})


@app.task(queue="etl", pool="etl_pool", retries=5, timeout=600, isolation="process")
def load_table(table: str, day: str) -> dict[str, int]:
    return {"rows": len(table) + len(day)}


@app.task
def ping() -> str:
    return "pong"


@app.task(name="etl.async_load")
async def async_load(table: str, *, full: bool = False) -> int:
    return len(table) + int(full)


# accepted -------------------------------------------------------------------------------
handle: faena.JobHandle = load_table.enqueue("users", "2026-11-27")
handle = load_table.enqueue(table="users", day="2026-11-27")
handle = load_table.enqueue_with(["users", "2026-11-27"], idempotency_key="users/2026-11-27")
handle = load_table.enqueue_with(["users", "2026-11-27"], delay=60, priority=5, queue="etl")
handles = load_table.enqueue_many([(["users", "d1"], {}), (["orders", "d1"], {})], retries=2)
handle = ping.enqueue()
handle = async_load.enqueue("users", full=True)
rows: dict[str, int] = load_table("users", "2026-11-27")  # a task is still its function
handle = app.enqueue("myproject.jobs.load_table", ["users", "2026-11-27"], timeout=30.0)
task: faena.Task[[str, str], dict[str, int]] = load_table

with_middleware = faena.App(broker="memory://", middleware=[Throttle()])

# refused --------------------------------------------------------------------------------
faena.App(middleware=[object()])  # type: ignore[list-item]
load_table.enqueue(1, 2, 3, nonsense=True)  # type: ignore[arg-type, call-arg]
load_table.enqueue("users", 2026)  # type: ignore[arg-type]
load_table.enqueue("users")  # type: ignore[call-arg]
load_table.enqueue("users", "2026-11-27", idempotency_key="k")  # type: ignore[call-arg]
load_table.enqueue_with(["users", "2026-11-27"], idempotency_key=7)  # type: ignore[arg-type]
load_table.enqueue_with(["users"], nonsense=True)  # type: ignore[call-arg]
ping.enqueue("extra")  # type: ignore[call-arg]
async_load.enqueue("users", True)  # type: ignore[misc]
app.task(queue="etl", retires=3)  # type: ignore[call-overload]
app.task(timeout="10 minutes")  # type: ignore[call-overload]
app.task(isolation="fork")  # type: ignore[call-overload]
wrong: str = load_table("users", "2026-11-27")  # type: ignore[assignment]
