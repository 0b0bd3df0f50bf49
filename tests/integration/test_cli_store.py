"""The commands that read or act on jobs say which store they use, never create one, and
never write the app's pool sizes; a store whose folder does not exist is refused."""

from __future__ import annotations

import itertools
import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from faena.cli.main import cli

APP_SOURCE = """
import faena

app = faena.App(broker="sqlite:///faena.db", pools={"etl_pool": 24}, parallelism=64)
"""

_names = itertools.count()


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    for var in ("FAENA_BROKER_URL", "FAENA_APP"):
        monkeypatch.delenv(var, raising=False)
    return tmp_path


@pytest.fixture
def app_path(folder: Path) -> Iterator[str]:
    name = f"storeapp_{next(_names)}"
    (folder / f"{name}.py").write_text(APP_SOURCE)
    yield f"{name}:app"
    module = sys.modules.pop(name, None)
    if module is not None:
        module.app.close()  # the broker the commands opened on the module's app


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.stdout, result.stderr


READERS = [
    ["jobs", "list"],
    ["jobs", "show", "0123"],
    ["jobs", "retry", "0123"],
    ["jobs", "cancel", "0123"],
    ["pools"],
    ["pools", "set", "etl_pool", "3"],
    ["queues"],
    ["queues", "pause", "etl"],
    ["queues", "resume", "etl"],
    ["workers"],
]


@pytest.mark.parametrize("command", READERS, ids=" ".join)
def test_without_a_store_the_command_says_which_and_creates_nothing(
    folder: Path, command: list[str]
) -> None:
    code, _out, err = invoke(*command)
    assert code == 1
    assert f"store: sqlite:///{folder}/faena.db" in err
    assert f"no faena store at {folder}/faena.db" in err
    assert "Traceback" not in err
    assert list(folder.iterdir()) == []


@pytest.mark.parametrize("command", [*READERS, ["migrate"]], ids=" ".join)
def test_a_store_in_a_folder_that_does_not_exist_is_refused_and_no_folder_is_made(
    folder: Path, command: list[str]
) -> None:
    missing = folder / "missing" / "dir"
    code, _out, err = invoke(*command, "--broker", f"sqlite:///{missing}/x.db")
    assert code == 1
    assert str(missing) in err
    assert not (folder / "missing").exists()


def test_the_app_broker_is_used_and_reading_never_writes_its_pool_sizes(
    folder: Path, app_path: str
) -> None:
    assert invoke("migrate")[0] == 0
    code, _out, err = invoke("pools", "--app", app_path, "set", "etl_pool", "30")
    assert code == 0, err
    for _ in range(2):  # reading with the app (which declares 24) leaves 30
        code, out, err = invoke("pools", "--app", app_path, "--json")
        assert code == 0, err
        assert {p["pool"]: p["size"] for p in json.loads(out)}["etl_pool"] == 30
    assert invoke("queues", "--app", app_path)[0] == 0
    from faena.brokers.url import open_broker

    broker = open_broker(f"sqlite:///{folder}/faena.db", existing=True)
    assert broker.get_parallelism() is None  # nor its parallelism (64)
    broker.close()


def test_a_queue_is_paused_and_resumed_and_the_listing_shows_it(folder: Path) -> None:
    assert invoke("migrate")[0] == 0
    from faena.brokers.url import open_broker
    from faena.core.job import NewJob

    broker = open_broker(f"sqlite:///{folder}/faena.db", existing=True)
    broker.enqueue([NewJob(task="t", queue="etl"), NewJob(task="t", queue="dq")])
    broker.close()

    code, out, err = invoke("queues", "pause", "etl")
    assert code == 0, err
    assert "queue etl paused" in out
    assert "paused already" in invoke("queues", "pause", "etl")[1]
    assert invoke("queues", "pause", "idle")[0] == 0  # a queue without jobs may be paused

    code, out, err = invoke("queues", "--json")
    assert code == 0, err
    assert {q["queue"]: q["paused"] for q in json.loads(out)} == {
        "dq": False,
        "etl": True,
        "idle": True,
    }
    code, out, err = invoke("queues")
    assert code == 0, err
    etl_row = next(line for line in out.splitlines() if line.startswith("etl"))
    assert etl_row.split()[-1] == "yes"

    code, out, err = invoke("queues", "resume", "etl")
    assert code == 0, err
    assert "queue etl resumed" in out
    assert "was not paused" in invoke("queues", "resume", "etl")[1]
    code, out, _err = invoke("queues", "--json")
    assert {q["queue"]: q["paused"] for q in json.loads(out)} == {
        "dq": False,
        "etl": False,
        "idle": True,
    }


def test_the_worker_registry_is_listed(folder: Path) -> None:
    assert invoke("migrate")[0] == 0
    from faena.brokers.protocol import WorkerReport
    from faena.brokers.url import open_broker

    broker = open_broker(f"sqlite:///{folder}/faena.db", existing=True)
    broker.report_worker(WorkerReport("h:1:abc", "h", 1, ("etl", "dq"), 4, "9.9", 0.0))
    broker.report_worker(WorkerReport("h:2:def", "h", 2, ("etl",), 1, "9.9", 0.0, "stopped"))
    broker.close()
    code, out, err = invoke("workers", "--json")
    assert code == 0, err
    assert {w["id"]: (w["state"], w["queues"]) for w in json.loads(out)} == {
        "h:1:abc": ("running", ["etl", "dq"]),
        "h:2:def": ("stopped", ["etl"]),
    }
    code, out, err = invoke("workers")
    assert code == 0, err
    assert "h:1:abc" in out and "etl,dq" in out


def test_a_bad_queue_name_is_refused_with_the_usual_error(folder: Path) -> None:
    assert invoke("migrate")[0] == 0
    code, _out, err = invoke("queues", "pause", "")
    assert code == 1
    assert "queue '' is not valid" in err
    assert "Traceback" not in err


def test_a_pool_of_zero_slots_is_refused(folder: Path) -> None:
    assert invoke("migrate")[0] == 0
    code, _out, err = invoke("pools", "set", "etl_pool", "0")
    assert code == 2
    assert "SIZE" in err
    code, out, _err = invoke("pools", "--json")
    assert "etl_pool" not in out


def test_describe_url_hides_passwords_and_shows_the_sqlite_file(folder: Path) -> None:
    from faena.brokers.url import describe_url

    assert describe_url("sqlite:///faena.db") == f"sqlite:///{folder}/faena.db"
    assert describe_url("sqlite:////abs/x.db?sync=full") == "sqlite:////abs/x.db?sync=full"
    assert (
        describe_url("postgresql://app:s3cret@db:5432/jobs") == "postgresql://app:***@db:5432/jobs"
    )
    assert describe_url("redis://:pw@[::1]:6379/0") == "redis://:***@[::1]:6379/0"
    assert describe_url("redis://localhost:6379/0") == "redis://localhost:6379/0"
    assert describe_url("postgresql://db/jobs?user=a&password=pw&sslmode=require") == (
        "postgresql://db/jobs?user=a&password=***&sslmode=require"
    )


def test_jobs_show_prints_the_attempt_history(folder: Path) -> None:
    assert invoke("migrate")[0] == 0
    from faena.brokers.url import open_broker
    from faena.core.job import ErrorInfo, NewJob, Outcome
    from faena.core.states import JobState

    broker = open_broker(f"sqlite:///{folder}/faena.db", existing=True)
    (new,) = broker.enqueue([NewJob(task="t", queue="etl")])
    (job,) = broker.claim("w-1", ["etl"], 1, 30.0).jobs
    error = ErrorInfo("ValueError", "bad input", "Traceback ...")
    broker.finish([Outcome(job.id, job.attempt, JobState.FAILED, error=error, retry_at=0.0)])
    (job,) = broker.claim("w-2", ["etl"], 1, 30.0).jobs
    broker.finish([Outcome(job.id, job.attempt, JobState.SUCCEEDED, result_json="1")])
    broker.close()
    code, out, _err = invoke("jobs", "show", new.id, "--broker", f"sqlite:///{folder}/faena.db")
    assert code == 0, out
    attempts = json.loads(out)["attempts"]
    assert [(a["attempt"], a["worker"], a["outcome"]) for a in attempts] == [
        (1, "w-1", "failed"),
        (2, "w-2", "succeeded"),
    ]
    assert attempts[0]["error_message"] == "bad input"


def _dead_jobs(folder: Path) -> list[str]:
    """Two dead jobs on queue etl, one on dq, and one queued job on etl; their ids."""
    from faena.brokers.url import open_broker
    from faena.core.job import ErrorInfo, NewJob, Outcome
    from faena.core.states import JobState

    broker = open_broker(f"sqlite:///{folder}/faena.db", existing=True)
    made = broker.enqueue([NewJob(task="t", queue=q, max_attempts=1) for q in ("etl", "etl", "dq")])
    claimed = broker.claim("w1", ["etl", "dq"], 3, 30.0).jobs
    err = ErrorInfo("E", "boom")
    broker.finish([Outcome(j.id, j.attempt, JobState.DEAD, error=err) for j in claimed])
    [waiting] = broker.enqueue([NewJob(task="t", queue="etl")])
    broker.close()
    return [j.id for j in made] + [waiting.id]


def _states(folder: Path) -> dict[str, str]:
    code, out, err = invoke("jobs", "list", "--json")
    assert code == 0, err
    return {j["id"]: j["state"] for j in json.loads(out)}


def test_jobs_matching_a_filter_are_retried_and_cancelled_in_batches(folder: Path) -> None:
    assert invoke("migrate")[0] == 0
    etl1, etl2, dq, waiting = _dead_jobs(folder)
    code, out, err = invoke("jobs", "retry", "--all", "--state", "dead", "--queue", "etl")
    assert code == 0, err
    assert "2 jobs queued" in out
    states = _states(folder)
    assert [states[i] for i in (etl1, etl2, dq, waiting)] == ["queued", "queued", "dead", "queued"]

    code, out, err = invoke("jobs", "cancel", "--all", "--queue", "etl", "--batch", "1")
    assert code == 0, err
    assert "3 jobs cancelled or asked to stop" in out
    assert _states(folder)[dq] == "dead"
    code, out, err = invoke("jobs", "retry", "--all", "--task", "t")
    assert code == 0, err
    assert "4 jobs queued" in out


def test_all_without_a_filter_needs_yes(folder: Path) -> None:
    assert invoke("migrate")[0] == 0
    _dead_jobs(folder)
    for verb in ("retry", "cancel"):
        code, _out, err = invoke("jobs", verb, "--all")
        assert code == 2
        assert "add a filter, or --yes" in err
    code, out, err = invoke("jobs", "retry", "--all", "--yes")
    assert code == 0, err
    assert "3 jobs queued" in out


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["jobs", "retry"], "give the job ids"),
        (["jobs", "retry", "0123", "--all"], "not both"),
        (["jobs", "cancel", "0123", "--queue", "etl"], "only apply with --all"),
        (["jobs", "retry", "--all", "--state", "queued"], "'queued' is not one of"),
        (["jobs", "retry", "--all", "--queue", "etl", "--batch", "0"], "1<=x<=1000"),
    ],
    ids=" ".join,
)
def test_bulk_usage_mistakes_are_refused(folder: Path, args: list[str], words: str) -> None:
    code, _out, err = invoke(*args)
    assert code == 2
    assert words in err
