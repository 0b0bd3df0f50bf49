"""``faena enqueue``: the name is resolved (or refused) and the arguments checked against the
task's signature at once, with the app's options; nothing is enqueued when it is refused."""

from __future__ import annotations

import itertools
import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from tests.worker_threads import run

from faena.cli.main import cli
from faena.cli.options import load_app

APP_SOURCE = """
import faena

app = faena.App(broker="sqlite:///faena.db", pools={"etl_pool": 24})

@app.task(queue="etl", pool="etl_pool", retries=5, timeout=600)
def load_table(table: str, day: str) -> dict:
    return {"table": table, "day": day}

@app.task(name="dq.check")
def check(table, rule="rows"):
    return rule

@app.task(name="a.twin")
def twin():
    return 1

@app.task(name="b.twin")
def twin2():
    return 2

twin2.fn.__name__ = "twin"
"""

_names = itertools.count()


@pytest.fixture
def app_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A fresh app module in a fresh folder (the cwd: its sqlite:///faena.db lands there)."""
    name = f"cliapp_{next(_names)}"
    (tmp_path / f"{name}.py").write_text(APP_SOURCE)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("FAENA_BROKER_URL", raising=False)
    monkeypatch.delenv("FAENA_APP", raising=False)
    yield f"{name}:app"
    module = sys.modules.pop(name, None)
    if module is not None:
        module.app.close()  # the broker the commands opened on the module's app


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.stdout, result.stderr


def jobs_in(tmp_path: Path) -> list[dict[str, object]]:
    code, out, err = invoke("jobs", "list", "--json", "--broker", f"sqlite:///{tmp_path}/faena.db")
    assert code == 0, err
    found: list[dict[str, object]] = json.loads(out)
    return found


def test_the_readme_line_enqueues_the_registered_task_with_its_options(
    app_path: str, tmp_path: Path
) -> None:
    code, out, err = invoke(
        "enqueue", "load_table", "--app", app_path, "--args", '["users", "2026-11-27"]'
    )
    assert code == 0, err
    assert f"store: sqlite:///{tmp_path}/faena.db" in err
    [job] = jobs_in(tmp_path)
    assert job["id"] == out.strip()
    assert job["task"] == f"{app_path.split(':')[0]}.load_table"
    assert (job["queue"], job["pool"], job["max_attempts"], job["timeout"]) == (
        "etl",
        "etl_pool",
        6,
        600.0,
    )


@pytest.mark.parametrize(
    ("task", "args", "kwargs", "message"),
    [
        ("nope", "[]", "{}", "task 'nope' is not registered"),
        ("twin", "[]", "{}", "'twin' is ambiguous: a.twin, b.twin"),
        ("load_table", '["users"]', "{}", "load_table(table: str, day: str) -> dict"),
        ("dq.check", '["t"]', '{"rul": "x"}', "check(table, rule='rows')"),
        ("dq.check", '["t", "rows", 3]', "{}", "too many positional arguments"),
    ],
)
def test_an_unknown_name_or_arguments_that_do_not_fit_are_refused_and_nothing_is_enqueued(
    app_path: str, tmp_path: Path, task: str, args: str, kwargs: str, message: str
) -> None:
    code, _out, err = invoke("enqueue", task, "--app", app_path, "--args", args, "--kwargs", kwargs)
    assert code == 1
    assert message in err
    assert "Traceback" not in err
    assert not (tmp_path / "faena.db").exists() or jobs_in(tmp_path) == []


def test_the_short_name_rule_is_the_apps(app_path: str) -> None:
    app = load_app(app_path)
    module = app_path.split(":")[0]
    assert app.resolve_task_name("load_table") == f"{module}.load_table"
    assert app.resolve_task_name("dq.check") == "dq.check"
    assert app.resolve_task_name("check") == "dq.check"  # the function's name, when unique


def test_enqueue_without_an_app_is_refused_naming_app(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("FAENA_APP", raising=False)
    code, _out, err = invoke("enqueue", "myproject.jobs.load_table", "--queue", "etl")
    assert code == 2
    assert "--app" in err and "FAENA_APP" in err
    assert list(tmp_path.iterdir()) == []  # no store created either


def test_enqueue_reads_the_app_from_faena_app(
    app_path: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAENA_APP", app_path)
    code, _out, err = invoke("enqueue", "load_table", "--args", '["users", "d"]')
    assert code == 0, err
    assert len(jobs_in(tmp_path)) == 1


def test_a_negative_wait_is_refused(app_path: str, tmp_path: Path) -> None:
    code, _out, err = invoke(
        "enqueue", "dq.check", "--app", app_path, "--args", '["t"]', "--wait", "-1"
    )
    assert code == 2
    assert "--wait" in err
    assert not (tmp_path / "faena.db").exists()


def test_wait_with_json_prints_one_document(app_path: str, stop: list) -> None:
    app = load_app(app_path)
    stop.append(run(app, concurrency=1))
    code, out, err = invoke(
        "enqueue", "dq.check", "--app", app_path, "--args", '["t"]', "--wait", "30", "--json"
    )
    assert code == 0, err
    job = json.loads(out)  # one document: json.loads refuses "extra data"
    assert (job["state"], job["result"]) == ("succeeded", "rows")
    app.close()


def test_wait_with_json_that_times_out_prints_the_job_and_exits_1(app_path: str) -> None:
    code, out, err = invoke(
        "enqueue", "dq.check", "--app", app_path, "--args", '["t"]', "--wait", "0", "--json"
    )
    assert code == 1
    assert json.loads(out)["state"] == "queued"
    assert "still queued" in err
