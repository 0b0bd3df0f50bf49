"""``/api/v1/bulk/retry`` and ``/bulk/cancel``: bounded batches by filter, and their refusals
(problem+json naming the field, the store unchanged)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, get_args

import pytest
from starlette.testclient import TestClient

import faena
from faena.core.job import ErrorInfo, Outcome
from faena.core.states import CANCELLABLE, RETRYABLE, JobState
from faena.web.app import create_app
from faena.web.schemas import CancellableState, RetryableState

ADMIN = {"Authorization": "Bearer adm1n"}


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[faena.App, TestClient]]:
    app = faena.App(broker=f"sqlite:///{tmp_path / 'bulk.db'}")
    app.broker.setup()
    yield app, TestClient(create_app(app, admin_token="adm1n"), raise_server_exceptions=False)
    app.close()


def _dead(app: faena.App, queue: str, n: int) -> list[str]:
    ids = [app.enqueue("t.bulk", [i], queue=queue, retries=0).id for i in range(n)]
    claimed = app.broker.claim("w", [queue], n, 60.0).jobs
    for job in claimed:
        outcome = Outcome(job.id, job.attempt, JobState.DEAD, error=ErrorInfo("E", "boom"))
        app.broker.finish([outcome])
    return ids


def _states(app: faena.App) -> dict[str, JobState]:
    return {j.id: j.state for j in app.broker.list_jobs(limit=1000)}


def test_the_state_choices_are_core_s_sets() -> None:
    assert set(get_args(RetryableState)) == {s.value for s in RETRYABLE}
    assert set(get_args(CancellableState)) == {s.value for s in CANCELLABLE}


def test_bulk_retry_runs_the_matching_dead_jobs_again_in_batches(
    served: tuple[faena.App, TestClient],
) -> None:
    app, client = served
    mine, other = _dead(app, "etl", 5), _dead(app, "mail", 2)
    first = client.post("/api/v1/bulk/retry", json={"queue": "etl", "limit": 3}, headers=ADMIN)
    assert first.status_code == 200, first.text
    assert first.json() == {"changed": 3, "more": True}
    rest = client.post("/api/v1/bulk/retry", json={"queue": "etl", "limit": 3}, headers=ADMIN)
    assert rest.json() == {"changed": 2, "more": False}
    states = _states(app)
    assert {states[i] for i in mine} == {JobState.QUEUED}
    assert {states[i] for i in other} == {JobState.DEAD}
    again = client.post("/api/v1/bulk/retry", json={"queue": "etl"}, headers=ADMIN)
    assert again.json() == {"changed": 0, "more": False}


def test_bulk_cancel_ends_the_matching_pending_jobs(served: tuple[faena.App, TestClient]) -> None:
    app, client = served
    keep = app.enqueue("t.keep", [], queue="etl").id
    gone = [app.enqueue("t.bulk", [i], queue="etl").id for i in range(3)]
    answer = client.post(
        "/api/v1/bulk/cancel", json={"queue": "etl", "task": "t.bulk"}, headers=ADMIN
    )
    assert answer.json() == {"changed": 3, "more": False}
    states = _states(app)
    assert {states[i] for i in gone} == {JobState.CANCELLED}
    assert states[keep] is JobState.QUEUED


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/api/v1/bulk/retry", {"state": "running"}, "state"),
        ("/api/v1/bulk/cancel", {"state": "dead"}, "state"),
        ("/api/v1/bulk/retry", {"limit": 0}, "limit"),
        ("/api/v1/bulk/retry", {"limit": 1001}, "limit"),
        ("/api/v1/bulk/retry", {"limit": "5"}, "limit"),
        ("/api/v1/bulk/cancel", {"queue": ""}, "queue"),
        ("/api/v1/bulk/cancel", {"queue": "q" * 65}, "queue"),
        ("/api/v1/bulk/cancel", {"queue": "a\u0000b"}, "queue"),
        ("/api/v1/bulk/cancel", {"everything": True}, "everything"),
    ],
)
def test_bad_filters_are_refused_and_change_nothing(
    served: tuple[faena.App, TestClient], path: str, body: dict[str, Any], field: str
) -> None:
    app, client = served
    _dead(app, "etl", 2)
    app.enqueue("t.bulk", [], queue="etl")
    before = _states(app)
    answer = client.post(path, json=body, headers=ADMIN)
    assert 400 <= answer.status_code < 500, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    problem = answer.json()
    named = [e.get("field", "") for e in problem.get("errors", [])] + [problem["detail"]]
    assert any(field in n for n in named), problem
    assert _states(app) == before
