"""What a worker's log lines say: the store it works (password hidden), and why a job died."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from tests.worker_threads import run

import faena
from faena.observability import logs


@pytest.fixture
def out() -> io.StringIO:
    buf = io.StringIO()
    logs.configure("json", "INFO", stream=buf)
    return buf


def events(buf: io.StringIO, name: str) -> list[dict[str, object]]:
    logs.flush_events()
    found = [json.loads(line) for line in buf.getvalue().splitlines()]
    return [line for line in found if line.get("event") == name]


def test_an_unknown_task_is_dead_at_once_and_not_for_lack_of_attempts(
    out: io.StringIO, stop: list
) -> None:
    app = faena.App(broker="memory://")

    @app.task(retries=0)
    def once() -> None:
        raise ValueError("bad row")

    stop.append(run(app, concurrency=1))
    ghost = app.enqueue("no.such.task")  # 4 attempts in its budget, 1 used
    with pytest.raises(faena.JobFailedError):
        ghost.wait(timeout=10)
    with pytest.raises(faena.JobFailedError):
        once.enqueue().wait(timeout=10)
    by_task = {line["task"]: line for line in events(out, "job.dead")}
    unknown, spent = by_task["no.such.task"], by_task[once.name]
    assert unknown["reason"] == "not_retryable"
    assert unknown["max_attempts"] == 4 and unknown["attempt"] == 1
    assert "no attempts left" not in str(unknown["message"])
    assert spent["reason"] == "no_attempts_left"
    assert spent["message"] == "job is dead: no attempts left"


def test_the_start_line_names_the_store_without_its_password(
    out: io.StringIO, stop: list, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert faena.App(broker="postgresql://app:s3cret@db/jobs").store == (
        "postgresql://app:***@db/jobs"
    )
    app = faena.App(broker="sqlite:///faena.db")  # relative: the line says which file
    stop.append(run(app, concurrency=1))
    with pytest.raises(faena.JobFailedError):
        app.enqueue("x").wait(timeout=10)  # the worker is up once it ran a job
    [started] = events(out, "worker.started")
    assert started["store"] == f"sqlite:///{tmp_path}/faena.db"
