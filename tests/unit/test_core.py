"""The pure core: retry policy, payloads, admission, transitions, outcomes."""

from __future__ import annotations

import random
import sqlite3
import time
from pathlib import Path

import pytest

import faena
from faena.brokers.url import open_broker
from faena.core import lifecycle, outcomes
from faena.core.clock import ManualClock
from faena.core.job import ErrorInfo, NewJob
from faena.core.lease import check_lease
from faena.core.payload import check_args, encode
from faena.core.pools import Admission, Candidate, check_pools
from faena.core.retry import RetryPolicy
from faena.core.states import JobState, check_transition
from faena.errors import (
    BrokerError,
    BrokerURLError,
    ConfigError,
    InvalidTransitionError,
    PayloadError,
    SchemaError,
    UnknownPoolError,
)


def test_backoff_is_exponential_capped_and_jittered() -> None:
    policy = RetryPolicy(retries=10, backoff_base=1.0, backoff_cap=30.0)
    assert [policy.ceiling(n) for n in range(1, 8)] == [1, 2, 4, 8, 16, 30, 30]
    rng = random.Random(7)
    delays = [policy.delay(3, rng) for _ in range(200)]
    assert all(0 <= d <= 4 for d in delays) and max(delays) > 3 and min(delays) < 1
    assert RetryPolicy(jitter=False, backoff_base=2).delay(2) == 4
    assert policy.ceiling(500) == 30


def test_retry_policy_rejects_nonsense() -> None:
    with pytest.raises(ConfigError, match="retries must be >= 0"):
        RetryPolicy(retries=-1)
    with pytest.raises(ConfigError, match="lease must be at least"):
        check_lease(0.1)


def test_payload_is_json_only_and_bounded() -> None:
    assert encode("args", [1, "é", {"a": None}]) == '[1,"é",{"a":null}]'
    with pytest.raises(PayloadError, match=r"JSON-serializable.*object"):
        encode("args", [object()])
    with pytest.raises(PayloadError, match=r"NaN|JSON"):
        encode("args", [float("nan")])
    with pytest.raises(PayloadError, match="over the limit of 10 bytes"):
        encode("kwargs", {"k": "x" * 20}, max_bytes=10)
    with pytest.raises(PayloadError, match="kwargs must be a JSON object"):
        check_args([], [])
    with pytest.raises(PayloadError, match="keys must be strings"):
        check_args([], {1: 2})


def test_admission_skips_full_pools_and_stops_at_parallelism() -> None:
    adm = Admission({"a": 1, "b": 2}, parallelism_free=2, limit=5)
    cands = [
        Candidate("1", "a", 1),
        Candidate("2", "a", 1),
        Candidate("3", "b", 2),
        Candidate("4", "b", 1),
    ]
    assert adm.admit(cands) == ["1", "3"]
    assert adm.blocked
    adm = Admission({"a": 3}, parallelism_free=None, limit=1)
    assert adm.admit([Candidate("1", "a", 1), Candidate("2", "a", 1)]) == ["1"]


def test_pool_config_is_checked() -> None:
    assert check_pools({"etl_pool": 24}) == {"etl_pool": 24}
    with pytest.raises(ConfigError, match="size must be an integer >= 0"):
        check_pools({"etl_pool": -1})
    with pytest.raises(ConfigError, match="not valid"):
        check_pools({"bad name!": 1})


def test_transition_table() -> None:
    check_transition("j", JobState.QUEUED, JobState.RUNNING)
    with pytest.raises(InvalidTransitionError, match="succeeded; it cannot become running"):
        check_transition("j", JobState.SUCCEEDED, JobState.RUNNING)


def test_lifecycle_and_outcomes() -> None:
    clock = ManualClock()
    job = lifecycle.create(NewJob(task="t", queue="q", max_attempts=2), clock.now())
    running = lifecycle.claim(job, "w", clock.now(), 30)
    err = ErrorInfo("E", "m")
    out = outcomes.after_failure(
        running,
        err,
        retryable=True,
        policy=RetryPolicy(retries=1),
        now=clock.now(),
        rng=random.Random(1),
    )
    assert out.state is JobState.FAILED and out.retry_at is not None
    again = lifecycle.claim(lifecycle.finish(running, out, clock.now()), "w", clock.now(), 30)
    last = outcomes.after_failure(
        again, err, retryable=True, policy=RetryPolicy(retries=1), now=clock.now()
    )
    assert last.state is JobState.DEAD
    not_retryable = outcomes.after_failure(
        running, err, retryable=False, policy=RetryPolicy(), now=0
    )
    assert not_retryable.state is JobState.DEAD
    assert lifecycle.release(running).tries == 0


def test_manual_clock_never_goes_back() -> None:
    clock = ManualClock(10)
    clock.advance(5)
    assert clock.now() == 15
    with pytest.raises(ValueError):
        clock.advance(-1)


# --- bad input at the edges -------------------------------------------------------------


def test_bad_broker_urls() -> None:
    with pytest.raises(BrokerURLError, match="unknown scheme 'mysql'"):
        open_broker("mysql://x/y")
    with pytest.raises(BrokerURLError, match="must name a file"):
        open_broker("sqlite:///:memory:")
    with pytest.raises(BrokerURLError, match="sync='sometimes'"):
        open_broker("sqlite:///x.db?sync=sometimes")


def test_a_file_that_is_not_a_database(tmp_path: Path) -> None:
    path = tmp_path / "notes.db"
    path.write_text("not sqlite at all " * 100)
    with pytest.raises(SchemaError, match="not an SQLite database"):
        open_broker(f"sqlite:///{path}").setup()
    assert path.read_text().startswith("not sqlite"), "the file was not touched"


def _open_at(path: str, start: float) -> str:
    """In a pool process: open ``path`` as a worker does, at ``start`` (wall clock)."""
    from faena.brokers.sqlite.store import Store

    time.sleep(max(start - time.time(), 0))
    try:
        Store(path).conn(durable=True)
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    return "ok"


def test_processes_that_open_a_new_database_at_once_all_get_in(tmp_path: Path) -> None:
    """The workers of --processes open a new database together; switching it to WAL mode
    needs the file alone, and SQLite's busy handler does not wait for that."""
    import multiprocessing

    answers = []
    with multiprocessing.get_context("fork").Pool(6) as pool:
        for i in range(30):
            path, start = str(tmp_path / f"new-{i}.db"), time.time() + 0.05
            answers += pool.starmap(_open_at, [(path, start)] * 6)
    assert [a for a in answers if a != "ok"] == []


def test_a_locked_database_is_not_called_a_bad_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from faena.brokers.sqlite import store

    monkeypatch.setattr(store, "BUSY_TIMEOUT_MS", 200)
    path = tmp_path / "busy.db"
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("PRAGMA journal_mode=DELETE")
    holder.execute("BEGIN EXCLUSIVE")  # another program holds the file
    try:
        with pytest.raises(BrokerError, match="database is locked") as caught:
            store.Store(str(path)).conn(durable=True)
        assert not isinstance(caught.value, SchemaError)
    finally:
        holder.execute("ROLLBACK")
        holder.close()


def test_a_database_that_is_not_faenas(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE customers (id INTEGER)")
    with pytest.raises(SchemaError, match=r"not faena's.*customers"):
        open_broker(f"sqlite:///{path}").setup()


def test_a_database_from_a_newer_faena(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'f.db'}"
    broker = open_broker(url)
    broker.setup()
    broker.close()
    with sqlite3.connect(tmp_path / "f.db") as conn:
        conn.execute("UPDATE faena_meta SET value = '99' WHERE key = 'schema_version'")
    with pytest.raises(SchemaError, match=r"schema version 99.*upgrade faena"):
        open_broker(url).setup()


def test_app_refuses_bad_input_and_keeps_other_jobs(tmp_path: Path) -> None:
    app = faena.App(broker=f"sqlite:///{tmp_path / 'a.db'}", pools={"etl_pool": 2})

    @app.task(queue="etl", pool="etl_pool")
    def load(table: str) -> None: ...

    good = load.enqueue("users")
    with pytest.raises(PayloadError):
        load.enqueue(object())
    with pytest.raises(UnknownPoolError, match="gpu_pool"):
        app.enqueue("x", pool="gpu_pool")
    with pytest.raises(ConfigError, match="queue name"):
        app.enqueue("x", queue="no spaces allowed")
    with pytest.raises(ConfigError, match="unknown task option"):
        app.task(queus="typo")(lambda: None)
    assert [h.id for h in app.jobs()] == [good.id]
    app.close()


def test_idempotent_enqueue_through_the_api(tmp_path: Path) -> None:
    app = faena.App(broker=f"sqlite:///{tmp_path / 'a.db'}")

    @app.task
    def load_table(table: str, day: str) -> None: ...

    a = load_table.enqueue_with(["users", "2026-11-27"], idempotency_key="users/2026-11-27")
    b = load_table.enqueue_with(["users", "2026-11-27"], idempotency_key="users/2026-11-27")
    assert a.id == b.id
    assert load_table("x", "y") is None  # calling the task runs it here
    app.close()


def test_the_cli_lists_every_command_its_modules_define() -> None:
    """Commands load lazily from a name -> module table: it must name every command each
    module exports, and nothing else."""
    from faena.cli.main import COMMAND_MODULES, COMMANDS, module_commands

    defined = {name: module for module in COMMAND_MODULES for name in module_commands(module)}
    assert defined == COMMANDS


def test_job_ids_are_uuid7_in_time_order() -> None:
    import uuid

    from faena.core.job import new_job_id, new_job_ids

    before = time.time_ns() // 1_000_000
    ids = [new_job_id() for _ in range(500)]
    ids += new_job_ids(500)  # a bulk enqueue's ids, from one read of the random source
    after = time.time_ns() // 1_000_000
    assert len(set(ids)) == len(ids)
    for text in ids:
        u = uuid.UUID(text)
        assert len(text) == 32 and u.version == 7 and u.variant == uuid.RFC_4122
        assert before <= int(text[:12], 16) <= after
    assert [i[:12] for i in ids] == sorted(i[:12] for i in ids)


def test_config_errors_are_config_errors_and_value_errors() -> None:
    from faena.brokers.sqlite.store import Store
    from faena.observability import logs

    with pytest.raises(BrokerURLError, match=r"sync='bogus'; use \?sync=enqueue"):
        Store("never-created.db", sync="bogus")  # refused before the file is touched
    with pytest.raises(ConfigError, match="log format must be auto, json or console"):
        logs.configure("yaml")
    assert issubclass(ConfigError, ValueError)  # code that caught ValueError still does
