"""A pipeline run's record from SQL rows: SQLite and PostgreSQL select the run and its steps
in the same column order (their ``_RUN`` / ``run`` and ``_STEPS`` / ``steps`` queries)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

from faena.core.dependencies import TriggerRule
from faena.core.runs import RunRecord, StepRecord
from faena.core.states import JobState


def run_record(
    row: Sequence[Any], step_rows: Iterable[Sequence[Any]], created: bool = False
) -> RunRecord:
    """``row``: id, pipeline, key, params (JSON), created_at; ``step_rows``: each step's name,
    job id, upstreams (JSON), rule, results flag, its job's state, error type, enqueued_at,
    run_at, started_at and finished_at."""
    steps = tuple(
        StepRecord(
            r[0],
            r[1],
            tuple(json.loads(r[2])),
            TriggerRule(r[3]),
            bool(r[4]),
            None if r[5] is None else JobState(r[5]),
            r[6],
            r[7],
            r[8],
            r[9],
            r[10],
        )
        for r in step_rows
    )
    return RunRecord(row[0], row[1], row[2], row[3], row[4], steps, created)
