"""Retention with a real worker on SQLite: finished jobs older than ``App(retention=...)``
are gone once the worker's heartbeat has pruned; young finished jobs and pending ones stay."""

from __future__ import annotations

import sqlite3
import time
from datetime import timedelta
from pathlib import Path

from tests.worker_threads import run

import faena
from faena.core.job import NewJob, Outcome
from faena.core.states import JobState

DAY = 86_400.0


def test_a_worker_prunes_old_finished_jobs_and_keeps_the_rest(tmp_path: Path, stop: list) -> None:
    path = tmp_path / "faena.db"
    app = faena.App(broker=f"sqlite:///{path}", retention=timedelta(days=7))
    broker = app.broker
    made = broker.enqueue([NewJob(task="t", queue="done") for _ in range(3)])
    claimed = broker.claim("w0", ["done"], 3, 30.0).jobs
    broker.finish([Outcome(j.id, j.attempt, JobState.SUCCEEDED, result_json="1") for j in claimed])
    old, young = [j.id for j in made[:2]], made[2].id
    [pending] = broker.enqueue([NewJob(task="t", queue="elsewhere")])
    with sqlite3.connect(path) as conn:  # as if they had finished 8 days ago
        marks = ",".join("?" * len(old))
        conn.execute(
            f"UPDATE faena_jobs SET finished_at = finished_at - ? WHERE id IN ({marks})",
            (8 * DAY, *old),
        )
    conn.close()

    stop.append(run(app, queues=["idle"], concurrency=1))
    deadline = time.monotonic() + 20.0
    while any(broker.get(i) is not None for i in old):
        assert time.monotonic() < deadline, "the worker did not prune the old jobs"
        time.sleep(0.05)
    kept = broker.get(young)
    assert kept is not None and kept.state is JobState.SUCCEEDED
    assert broker.get(pending.id) is not None
