"""``GET /api/v1/jobs`` searches (time range, text, cursor pages) and ``GET /api/v1/stats``
(per-minute counts, percentiles, jobs by state) on every backend; bad input is a 400 naming
the parameter, its value and the fix."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient
from tests.contract.conftest import BACKENDS
from tests.integration.test_api_v1 import ADMIN, AS_ADMIN, assert_problem

import faena
from faena.core.clock import ManualClock
from faena.core.job import ErrorInfo, Outcome
from faena.core.states import JobState
from faena.web.app import create_app


@pytest.mark.parametrize("name", list(BACKENDS))
def test_search_pages_and_stats_on_every_backend(tmp_path: Path, name: str) -> None:
    clock = ManualClock()
    broker = BACKENDS[name](tmp_path).open(clock)
    app = faena.App(broker=broker)
    app.broker.setup()
    try:
        client = TestClient(create_app(app, admin_token=ADMIN), headers=AS_ADMIN)
        start = clock.now()
        ids = []
        for i in range(7):
            ids.append(app.enqueue("t.a", [f"invoice-{i}"], {"who": "Ada"}, queue="q1").id)
            clock.advance(10.0)
        (job,) = app.broker.claim("w", ["q1"], 1, 60.0).jobs
        clock.advance(2.0)
        dead = Outcome(job.id, job.attempt, JobState.DEAD, error=ErrorInfo("E", "Disk Full"))
        app.broker.finish([dead])

        pages, cursor = [], None
        while True:
            params: dict[str, Any] = {"limit": 3, "queue": "q1"}
            if cursor:
                params["cursor"] = cursor
            body = client.get("/api/v1/jobs", params=params).json()
            pages.append([j["id"] for j in body["jobs"]])
            cursor = body["next_cursor"]
            if cursor is None:
                break
        assert pages == [ids[6:3:-1], ids[3:0:-1], ids[0:1]]

        found = client.get("/api/v1/jobs", params={"text": "INVOICE-5"}).json()
        assert [j["id"] for j in found["jobs"]] == [ids[5]] and found["next_cursor"] is None
        by_error = client.get("/api/v1/jobs", params={"text": "disk full"}).json()["jobs"]
        assert [j["id"] for j in by_error] == [job.id]
        ranged = client.get("/api/v1/jobs", params={"since": start + 20, "until": start + 40})
        assert [j["id"] for j in ranged.json()["jobs"]] == [ids[3], ids[2]]

        stats = client.get("/api/v1/stats", params={"minutes": 5}).json()
        assert len(stats["minutes"]) == 5
        assert sum(m["dead"] for m in stats["minutes"]) == 1
        assert set(stats["minutes"][0]) == {"minute", "succeeded", "retried", "dead", "cancelled"}
        assert stats["run_time"]["count"] == 1 and stats["run_time"]["p50"] == pytest.approx(2.0)
        assert stats["states"]["queued"] == 6 and stats["states"]["dead"] == 1
        assert client.get("/api/v1/stats", params={"queue": "q2"}).json()["states"]["dead"] == 0
    finally:
        app.close()


@pytest.fixture
def client(tmp_path: Path) -> Any:
    app = faena.App(broker=f"sqlite:///{tmp_path / 's.db'}")
    app.broker.setup()
    app.enqueue("t.a", [1], queue="q1")
    yield TestClient(create_app(app, admin_token=ADMIN), headers=AS_ADMIN)
    app.close()


@pytest.mark.parametrize(
    ("path", "params", "field"),
    [
        ("/api/v1/jobs", {"cursor": "12"}, "cursor"),
        ("/api/v1/jobs", {"cursor": "c1.$$"}, "cursor"),
        ("/api/v1/jobs", {"text": "x" * 201}, "text"),
        ("/api/v1/jobs", {"text": ""}, "text"),
        ("/api/v1/jobs", {"since": "yesterday"}, "since"),
        ("/api/v1/jobs", {"until": "inf"}, "until"),
        ("/api/v1/jobs", {"offset": 5, "text": "a"}, "offset"),
        ("/api/v1/jobs", {"offset": 5, "cursor": "c1.MTA"}, "offset"),
        ("/api/v1/stats", {"minutes": 0}, "minutes"),
        ("/api/v1/stats", {"minutes": 1441}, "minutes"),
        ("/api/v1/stats", {"queue": "a b"}, "queue"),
        ("/api/v1/stats", {"minute": 5}, "minute"),
        ("/api/v1/jobs", {"search": "x"}, "search"),
    ],
)
def test_bad_search_and_stats_parameters_are_400_naming_them(
    client: Any, path: str, params: dict[str, Any], field: str
) -> None:
    problem = assert_problem(client.get(path, params=params), 400, "invalid_parameter")
    assert [e["field"] for e in problem["errors"]] == [field]
    assert problem["errors"][0]["fix"]


def test_the_plain_listing_still_pages_by_offset(client: Any) -> None:
    first = client.get("/api/v1/jobs", params={"limit": 1}).json()
    assert first["next_offset"] is None and first["next_cursor"] is None  # one job only
    second = client.get("/api/v1/jobs", params={"limit": 1, "offset": 1}).json()
    assert second["jobs"] == [] and second["offset"] == 1
