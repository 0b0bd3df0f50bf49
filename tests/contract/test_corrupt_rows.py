"""A stored job that cannot be read (its row or hash changed outside faena: a number that
is not one, an unknown state) goes dead by itself with a clear error; the jobs claimed with
it run normally and the claim never fails (issue 16, item 7).

The corruption is real: written with sqlite3 into the SQLite file and with HSET into the
Redis hash. PostgreSQL's typed columns cannot hold these values (an integer column refuses
'abc', state has a CHECK), and the memory broker holds Job objects only; payloads that are
not JSON, which every store can hold, are covered in ``tests/unit/test_corrupt_payloads.py``.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import parse_qs, urlsplit

import pytest

import faena
from faena.brokers.protocol import Broker
from faena.core import records
from faena.core.clock import ManualClock
from faena.core.job import Lease, NewJob, Outcome
from faena.core.states import JobState
from faena.errors import CorruptJobError
from faena.worker import Worker
from tests.conftest import PG_URL
from tests.contract.conftest import Backend
from tests.worker_threads import run

LEASE = 30.0
Q = ["etl"]

#: Job field: (SQLite column, Redis hash field, PostgreSQL column or None: its type refuses)
FIELDS = {
    "attempt": ("attempt", "attempt", None),
    "tries": ("tries", "tries", None),
    "max_attempts": ("max_attempts", "max", None),
    "pool_slots": ("pool_slots", "slots", None),
    "timeout": ("timeout", "timeout", None),
    "priority": ("priority", "priority", None),
    "run_at": ("run_at", "run_at", None),
    "enqueued_at": ("enqueued_at", "enq", None),
    "state": ("state", "state", None),
    "args": ("args", "args", "args_json"),
    "kwargs": ("kwargs", "kwargs", "kwargs_json"),
}


def _query(url: str, name: str) -> str:
    return parse_qs(urlsplit(url).query)[name][0]


def corrupt(backend: Backend, job_id: str, field: str, value: object) -> None:
    """Write ``value`` into the stored job as an outside hand would."""
    sqlite_column, redis_field, pg_column = FIELDS[field]
    if backend.name == "sqlite":
        assert backend.url is not None
        path = backend.url.removeprefix("sqlite:///").split("?")[0]
        with sqlite3.connect(path) as conn:
            sql = f"UPDATE faena_jobs SET {sqlite_column} = ? WHERE id = ?"
            try:
                cur = conn.execute(sql, (value, job_id))
            except sqlite3.IntegrityError as exc:
                pytest.skip(f"SQLite cannot hold {field}={value!r}: {exc}")
            assert cur.rowcount == 1
            stored = conn.execute(
                f"SELECT typeof({sqlite_column}) FROM faena_jobs WHERE id = ?", (job_id,)
            ).fetchone()
            if isinstance(value, str):
                assert stored == ("text",), "SQLite kept the text as it is"
        return
    if backend.name == "redis":
        import redis

        assert backend.url is not None
        client = redis.Redis.from_url(backend.url.split("?")[0])
        try:
            key = "{" + _query(backend.url, "prefix") + "}:j:" + job_id
            assert client.exists(key)
            client.hset(key, redis_field, value)
        finally:
            client.close()
        return
    if backend.name == "postgres" and pg_column is not None:
        _pg_update(backend, job_id, pg_column, value)
        return
    pytest.skip(f"the {backend.name} broker cannot hold {field}={value!r}: {REASON[backend.name]}")


def only(*names: str) -> Callable[[F], F]:
    """Run a test on these backends only: the others cannot hold its corruption, and are
    skipped before a store is made for them."""

    def mark(fn: F) -> F:
        fn.backends = names  # type: ignore[attr-defined]
        return fn

    return mark


@pytest.fixture(autouse=True)
def _only_where_it_can_be_held(request: pytest.FixtureRequest, backend: Backend) -> None:
    names = getattr(request.function, "backends", None)
    if names is not None and backend.name not in names:
        pytest.skip(f"a corruption that only {' and '.join(names)} can hold or meet")


def _pg_update(backend: Backend, job_id: str, column: str, value: object) -> None:
    import psycopg

    assert backend.url is not None
    schema = _query(backend.url, "schema")
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        sql = f'UPDATE "{schema}".jobs SET {column} = %s WHERE id = %s'
        assert conn.execute(sql, (value, job_id)).rowcount == 1


F = TypeVar("F", bound=Callable[..., Any])

REASON = {
    "memory": "it keeps Job objects, never stored text",
    "postgres": "its columns are typed (integer, double precision; state has a CHECK)",
}


def new(**kw: object) -> NewJob:
    return NewJob(task="t", queue="etl", **kw)  # type: ignore[arg-type]


def claim(broker: Broker, limit: int = 10) -> list:
    return broker.claim("w1", Q, limit, LEASE).jobs


def assert_buried(broker: Broker, job_id: str, field: str, value: str) -> None:
    job = broker.get(job_id)
    assert job is not None, "a buried job can still be read"
    assert job.state is JobState.DEAD
    assert job.error is not None and job.error.type == "CorruptJobError"
    assert f"its stored {field} is {value!r}" in job.error.message
    assert job.lease_expires_at is None


CASES = [
    ("attempt", "abc"),
    ("tries", "x1"),
    ("max_attempts", ""),
    ("pool_slots", "abc"),
    ("timeout", "abc"),
    ("priority", "high"),
    ("run_at", "tomorrow"),
    ("enqueued_at", "0x10"),
    ("state", "bogus"),
]


@only("sqlite", "redis")
@pytest.mark.parametrize(("field", "value"), CASES)
def test_a_corrupt_job_goes_dead_alone_and_the_others_run(
    backend: Backend, broker: Broker, field: str, value: str
) -> None:
    first, bad, last = broker.enqueue([new(), new(), new()])
    corrupt(backend, bad.id, field, value)
    for _ in range(3):  # every claim works; the good jobs are claimed once, at attempt 1
        claimed = claim(broker, limit=1) + claim(broker)
        assert all(j.id != bad.id for j in claimed)
        if claimed:
            assert sorted(j.id for j in claimed) == sorted([first.id, last.id])
            assert all(j.attempt == 1 and j.state is JobState.RUNNING for j in claimed)
            assert broker.finish([Outcome(j.id, 1, JobState.SUCCEEDED, "1") for j in claimed])
    assert_buried(broker, bad.id, field, value)
    for good in (first, last):
        done = broker.get(good.id)
        assert done is not None and done.state is JobState.SUCCEEDED and done.attempt == 1
    counts = broker.count_by_state()
    assert counts.get(("etl", JobState.DEAD)) == 1
    assert counts.get(("etl", JobState.SUCCEEDED)) == 2
    assert counts.get(("etl", JobState.QUEUED), 0) == 0
    assert claim(broker) == []
    # the unreadable value was put right (the message keeps it): a retry by hand runs it
    assert broker.retry(bad.id).state is JobState.QUEUED
    [again] = claim(broker)
    assert again.id == bad.id
    assert broker.finish([Outcome(bad.id, again.attempt, JobState.SUCCEEDED, "1")]) == [True]


@only("sqlite", "redis")
@pytest.mark.parametrize(("field", "value"), [("attempt", "abc"), ("tries", "x")])
def test_a_running_job_corrupted_under_its_lease_is_reaped_dead(
    backend: Backend, broker: Broker, clock: ManualClock, field: str, value: str
) -> None:
    """A job whose record is damaged while it runs: when its lease runs out it is made dead
    (not requeued), its slots go back, and the claim that reaps it still claims the rest."""
    [running] = broker.enqueue([new(pool="tiny")])
    assert [j.id for j in claim(broker)] == [running.id]
    corrupt(backend, running.id, field, value)
    [waiting] = broker.enqueue([new(pool="tiny")])
    clock.advance(LEASE + 1)
    result = broker.claim("w2", Q, 10, LEASE)
    assert [j.id for j in result.jobs] == [waiting.id]
    assert [(r.job.id, r.new_state) for r in result.reaped] == [(running.id, JobState.DEAD)]
    assert_buried(broker, running.id, field, value)
    assert broker.finish([Outcome(waiting.id, 1, JobState.SUCCEEDED, "1")]) == [True]
    [tiny] = [p for p in broker.pool_stats() if p.pool == "tiny"]
    assert tiny.used == 0


# --- a real worker ----------------------------------------------------------------------


def _app(backend: Backend) -> faena.App:
    if backend.url is None:
        pytest.skip(f"the {backend.name} broker cannot hold a corrupt record: {REASON['memory']}")
    app = faena.App(backend.url)

    @app.task(name="echo", retries=3)
    def echo(x: int = 0, **kw: object) -> int:
        return x

    return app


def _stopped(w: Worker, t: threading.Thread) -> None:
    w.stop(graceful=False)
    t.join(10)
    w.app.close()  # its broker's sockets: the GC would close them, warning, in a later test


@only("sqlite", "redis")
def test_a_worker_runs_on_past_a_job_whose_timeout_is_not_a_number(
    backend: Backend, broker: Broker
) -> None:
    """``timeout='abc'`` once crashed the worker, and the good job claimed in the same call
    died as WorkerLost: now the bad job goes dead at the claim and the worker runs on."""
    app = _app(backend)
    bad, good = app.enqueue("echo", [1]), app.enqueue("echo", [2])
    corrupt(backend, bad.id, "timeout", "abc")
    w, t = run(app, concurrency=2)
    try:
        assert good.wait(timeout=10) == 2
        assert app.enqueue("echo", [3]).wait(timeout=10) == 3
        assert t.is_alive(), "the worker runs on"
        assert_buried(app.broker, bad.id, "timeout", "abc")
        assert good.refresh().attempt == 1
    finally:
        _stopped(w, t)


@only("sqlite", "postgres", "redis")
@pytest.mark.parametrize(
    ("field", "value"),
    [("args", "[1, 2"), ("kwargs", "[1]"), ("args", '{"x": 1}'), ("kwargs", "\ufffd")],
)
def test_a_payload_that_cannot_be_decoded_makes_the_job_dead_at_once(
    backend: Backend, broker: Broker, field: str, value: str
) -> None:
    """Issue 22: arguments that are not JSON (or not an array / an object) make the job dead
    on its first attempt with CorruptJobError (retrying cannot help); the others run."""
    app = _app(backend)
    bad, good = app.enqueue("echo", [1]), app.enqueue("echo", [2])
    corrupt(backend, bad.id, field, value)
    w, t = run(app, concurrency=2)
    try:
        assert good.wait(timeout=10) == 2
        with pytest.raises(faena.JobFailedError, match="CorruptJobError"):
            bad.wait(timeout=10)
        job = bad.refresh()
        assert job.state is JobState.DEAD and job.tries == 1, "not retried"
        assert job.error is not None and job.error.type == "CorruptJobError"
        assert f"its stored {field} is {value!r}" in job.error.message
        assert t.is_alive()
    finally:
        _stopped(w, t)


@only("sqlite", "redis")
def test_a_scheduled_job_corrupted_while_it_waits_goes_dead_when_due(
    backend: Backend, broker: Broker, clock: ManualClock
) -> None:
    """Redis indexes a due job by its pool and slots: slots that cannot be read used to make
    every claim of the queue fail once the job came due."""
    later, now = broker.enqueue([new(run_at=clock.now() + 60), new()])
    assert [j.id for j in claim(broker)] == [now.id]  # the scheduled job is indexed, waiting
    assert broker.finish([Outcome(now.id, 1, JobState.SUCCEEDED, "1")]) == [True]
    corrupt(backend, later.id, "pool_slots", "many")
    [innocent] = broker.enqueue([new(run_at=clock.now() + 60)])
    clock.advance(61)
    assert [j.id for j in claim(broker)] == [innocent.id]
    assert_buried(broker, later.id, "pool_slots", "many")
    assert claim(broker) == []


@only("sqlite", "redis")
def test_releasing_a_job_damaged_while_it_ran_makes_it_dead_and_releases_the_rest(
    backend: Backend, broker: Broker
) -> None:
    a, b = broker.enqueue([new(), new()])
    assert len(claim(broker)) == 2
    corrupt(backend, a.id, "tries", "many")
    released = broker.release([Lease(a.id, 1), Lease(b.id, 1)])
    again = {j.id: j.attempt for j in claim(broker)}
    assert released[1] is True and again[b.id] == 2
    if backend.name == "sqlite":  # its release computes in SQL: MAX('many' - 1, 0) is 0
        assert released[0] is True and again[a.id] == 2
    else:
        assert released[0] is False and a.id not in again
        assert_buried(broker, a.id, "tries", "many")


@only("sqlite", "redis")
def test_finishing_beside_a_job_damaged_while_it_ran_writes_the_other_outcomes(
    backend: Backend, broker: Broker
) -> None:
    a, b = broker.enqueue([new(pool="tiny"), new()])
    assert len(claim(broker)) == 2
    corrupt(backend, a.id, "pool_slots", "two")
    done = broker.finish(
        [Outcome(a.id, 1, JobState.SUCCEEDED, "1"), Outcome(b.id, 1, JobState.SUCCEEDED, "2")]
    )
    assert done[1] is True
    good = broker.get(b.id)
    assert good is not None and good.state is JobState.SUCCEEDED
    if backend.name == "redis":  # the slots it held cannot be known: made dead, not finished
        assert done[0] is False
        assert_buried(broker, a.id, "pool_slots", "two")
    [c] = broker.enqueue([new()])
    assert [j.id for j in claim(broker)] == [c.id]


@only("sqlite", "postgres", "redis")
@pytest.mark.parametrize("value", ["2147483647", "99999999999999"])
def test_an_attempt_too_large_to_count_on_goes_dead(
    backend: Backend, broker: Broker, value: str
) -> None:
    """A count one more of which cannot be stored: PostgreSQL's integer overflows (the whole
    claim failed, every time), Lua's doubles write 1e14 plus one back as '1e+14'."""
    bad, good = broker.enqueue([new(), new()])
    if backend.name == "postgres" and int(value) < 2**31:
        _pg_update(backend, bad.id, "attempt", int(value))
    else:
        corrupt(backend, bad.id, "attempt", int(value) if backend.name == "sqlite" else value)
    assert [j.id for j in claim(broker)] == [good.id]
    job = broker.get(bad.id)
    assert job is not None and job.state is JobState.DEAD
    assert job.error is not None and job.error.type == "CorruptJobError"
    assert f"its stored attempt is {int(value)!r}" in job.error.message.replace("'", "")
    assert claim(broker) == []


@only("redis")
def test_redis_reading_a_corrupt_record_names_the_field(backend: Backend, broker: Broker) -> None:
    """Before a claim meets it, an operator's read of a corrupt record says what is wrong."""
    [job] = broker.enqueue([new()])
    corrupt(backend, job.id, "enqueued_at", "yesterday")
    with pytest.raises(CorruptJobError, match="its stored enqueued_at is 'yesterday'"):
        broker.get(job.id)


@only("redis")
@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("timeout", " 1.5"),
        ("timeout", "1e3"),
        ("timeout", "inf"),
        ("timeout", "nan"),
        ("timeout", "0x10"),
        ("timeout", "1_0"),
        ("timeout", ".5"),
        ("timeout", "1e"),
        ("attempt", "+1"),
        ("attempt", "007"),
        ("attempt", "-0"),
        ("attempt", "1.0"),
        ("attempt", "\u0661"),  # an Arabic-Indic one: Python's int() reads it, Lua does not
        ("priority", "9" * 18),
    ],
)
def test_redis_scripts_and_python_agree_on_what_can_be_read(
    backend: Backend, broker: Broker, field: str, value: str
) -> None:
    """A record the scripts claim is one Python can decode (else the claim would be written
    and the worker would fail to read its reply); one they bury is one Python cannot read."""
    [job] = broker.enqueue([new()])
    corrupt(backend, job.id, field, value)
    claimed = claim(broker)
    as_text = {field: value, "state": "queued"}
    if claimed:
        assert records.unreadable(as_text, text=True) is None
        assert claimed[0].id == job.id
    else:
        assert records.unreadable(as_text, text=True) == (field, value)
        assert_buried(broker, job.id, field, value)
