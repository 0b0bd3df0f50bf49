"""The SQLite schema's triggers: none builds a table per row it runs for, migration 13's
faena_count_ends counts exactly what migration 11's did, and the changes the triggers make
wake workers only when they may have made work runnable."""

from __future__ import annotations

import itertools
import re
import select
import sqlite3
from pathlib import Path

from faena.brokers.sqlite import SQLiteBroker
from faena.brokers.sqlite.store import migrations
from faena.brokers.sqlite.wake import SocketWaker
from faena.core.job import ErrorInfo, NewJob, Outcome
from faena.core.runs import NewRun, NewStep
from faena.core.states import JobState

# "x IN (a, b, c)": SQLite fills an ephemeral table with a list of 3+ constants once per run of
# the program the test is in; a trigger's program runs once per row
_IN_LIST = re.compile(r"\bIN\s*\(\s*(?!SELECT\b)([^()]*)\)", re.IGNORECASE)


def _long_in_lists(sql: str) -> list[str]:
    return [m.group(0) for m in _IN_LIST.finditer(sql) if m.group(1).count(",") >= 2]


def test_the_pattern_finds_long_in_lists() -> None:
    assert _long_in_lists("WHEN NEW.state IN ('a', 'b', 'c') AND x IN (1, 2)") == [
        "IN ('a', 'b', 'c')"
    ]
    assert _long_in_lists("WHERE id IN (SELECT downstream FROM e WHERE u IN (1, 2))") == []


def test_no_ordinary_job_pays_for_an_in_list_in_a_trigger(tmp_path: Path) -> None:
    """faena_count_ends runs for every claim and finish: it has no IN list at all. The
    pipeline triggers' IN lists come after a test of run_id that fails for ordinary jobs (an
    AND stops there), so only pipeline steps evaluate them."""
    broker = SQLiteBroker(str(tmp_path / "t.db"))
    broker.setup()
    conn = sqlite3.connect(tmp_path / "t.db")
    triggers = dict(conn.execute("SELECT name, sql FROM sqlite_master WHERE type = 'trigger'"))
    conn.close()
    broker.close()
    assert _long_in_lists(triggers["faena_count_ends"]) == []
    for name, sql in triggers.items():
        when = sql.split("BEGIN", 1)[0]
        if _long_in_lists(sql):
            assert "NEW.run_id IS NOT NULL AND" in when, (name, _long_in_lists(sql))


_STATES = ["scheduled", "queued", "running", "succeeded", "failed", "dead", "cancelled"]


def _counter_db(version: int) -> sqlite3.Connection:
    """A database with faena_jobs' columns the trigger reads and the trigger of ``version``."""
    conn = sqlite3.connect(":memory:")
    conn.execute(
        "CREATE TABLE faena_jobs (seq INTEGER PRIMARY KEY, queue TEXT, state TEXT, "
        "tries INTEGER, finished_at REAL, attempts TEXT)"
    )
    conn.execute(
        "CREATE TABLE faena_job_minutes (minute REAL NOT NULL, queue TEXT NOT NULL, "
        "series TEXT NOT NULL, n INTEGER NOT NULL, PRIMARY KEY (minute, queue, series)) "
        "WITHOUT ROWID"
    )
    sql = dict(migrations())[version]
    trigger = sql[sql.index("CREATE TRIGGER faena_count_ends") :]
    conn.execute(trigger[: trigger.index("END;") + 3])
    return conn


def test_migration_13_counts_every_transition_as_migration_11_did() -> None:
    """Every change of state (with the tries kept, raised or lowered, a finished_at or none,
    an attempt record or none) counts the same series in the same minute under both, and an
    ending with no time to count it in (no finished_at, no attempt record) fails under both."""
    old, new = _counter_db(11), _counter_db(13)
    refused: dict[sqlite3.Connection, list[int]] = {old: [], new: []}
    cases = itertools.product(_STATES, _STATES, (-1, 0, 1), (None, 600.0), (None, 1234.5))
    for seq, (before, after, tries, finished_at, attempt_at) in enumerate(cases, 1):
        attempts = None if attempt_at is None else f'[{{"n": 1, "f": {attempt_at}}}]'
        for conn in (old, new):
            conn.execute("INSERT INTO faena_jobs VALUES (?, 'q', ?, 1, NULL, NULL)", (seq, before))
            try:
                conn.execute(
                    "UPDATE faena_jobs SET state = ?, tries = ?, finished_at = ?, attempts = ? "
                    "WHERE seq = ?",
                    (after, 1 + tries, finished_at, attempts, seq),
                )
            except sqlite3.IntegrityError:  # NOT NULL: the minute
                refused[conn].append(seq)
    query = "SELECT minute, queue, series, n FROM faena_job_minutes ORDER BY 1, 2, 3"
    counted = old.execute(query).fetchall()
    assert {series for _, _, series, _ in counted} == {
        "succeeded",
        "dead",
        "cancelled",
        "retried",
    }
    assert new.execute(query).fetchall() == counted
    assert refused[new] == refused[old] != []


def _woken(waker: SocketWaker) -> bool:
    readable, _, _ = select.select([waker], [], [], 0.2)
    waker.drain()
    return bool(readable)


def test_a_finish_wakes_the_workers_only_when_a_pipeline_step_ends_or_a_retry_is_due(
    tmp_path: Path,
) -> None:
    """A finish wakes the waiting workers when it may have made work runnable: a failed
    attempt (its retry), or a pipeline step's end (the hand-off trigger may release its
    downstreams), whether reported alone or with others, by finish or finish_and_claim. An
    ordinary job's success or death wakes nobody: the counting trigger's row changes are no
    sign of new work (they made every finish wake every worker before)."""
    broker = SQLiteBroker(str(tmp_path / "w.db"))
    broker.setup()
    waker = broker.waker(["q"])
    try:
        broker.enqueue([NewJob(task="t", queue="q") for _ in range(4)])
        _woken(waker)
        a, b, c, d = broker.claim("w", ["q"], 4, 60.0).jobs
        broker.finish([Outcome(a.id, a.attempt, JobState.SUCCEEDED)])
        assert not _woken(waker)
        broker.finish([Outcome(b.id, b.attempt, JobState.DEAD, error=ErrorInfo("E", "m", ""))])
        assert not _woken(waker)
        broker.finish_and_claim([Outcome(c.id, c.attempt, JobState.SUCCEEDED)], "w", ["q"], 1, 60)
        assert not _woken(waker)
        broker.finish([Outcome(d.id, d.attempt, JobState.FAILED, error=ErrorInfo("E", "m", ""))])
        assert _woken(waker)

        steps = (
            NewStep("up", NewJob(task="s", queue="q"), ()),
            NewStep("down", NewJob(task="s", queue="q"), ("up",)),
        )
        run = NewRun("p", "p:1", "{}", steps)
        broker.create_run(run)
        _woken(waker)
        got = broker.claim("w", ["q"], 5, 60.0).jobs
        assert sorted(j.task for j in got) == ["s", "t"]  # the upstream, and d's retry
        up = [j for j in got if j.task == "s"]
        broker.finish([Outcome(up[0].id, up[0].attempt, JobState.SUCCEEDED)])
        assert _woken(waker)  # its downstream is runnable now
        [down] = broker.claim("w", ["q"], 5, 60.0).jobs
        done, _ = broker.finish_and_claim(
            [Outcome(down.id, down.attempt, JobState.SUCCEEDED)], "w", ["q"], 1, 60.0
        )
        assert done == [True] and _woken(waker)  # a step ended (nothing downstream)
    finally:
        waker.close()
        broker.close()
