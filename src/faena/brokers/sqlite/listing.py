"""The SQL of the SQLite broker's listings and counts: each reads an index, never the whole
table (``tests/contract/test_query_plans.py`` checks the plans).

``faena_jobs_state (state, queue, seq)`` holds the jobs of one state and queue newest first;
a listing by state alone merges one such range per queue (SQLite's ``MERGE (UNION ALL)``),
by queue alone one per state; ``faena_jobs_task (task, seq)`` serves a task filter.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from faena.brokers.sqlite.rows import COLUMNS, to_job
from faena.core.job import Job
from faena.core.states import JobState

#: beyond this many queues of one state, a state listing sorts instead of merging (SQLite
#: allows 500 terms in a compound SELECT)
MERGE_LIMIT = 200

_SELECT = f"SELECT {COLUMNS} FROM faena_jobs"
_PAGE = "ORDER BY seq DESC LIMIT ? OFFSET ?"

# the queues holding jobs of one state: a skip scan of faena_jobs_state, one seek per queue
QUEUES_OF_STATE = (
    "WITH RECURSIVE qs(q) AS ("
    " SELECT (SELECT MIN(queue) FROM faena_jobs WHERE state = :state)"
    " UNION ALL SELECT (SELECT MIN(queue) FROM faena_jobs WHERE state = :state AND queue > q)"
    " FROM qs WHERE q IS NOT NULL"
    ") SELECT q FROM qs WHERE q IS NOT NULL"
)

# the counters of migration 12 (kept by triggers on faena_jobs)
COUNT_BY_STATE = "SELECT queue, state, n FROM faena_job_counts WHERE n <> 0"


def merged(parts: int, where: str) -> str:
    """``parts`` ranges of ``where`` (each with its own parameters), merged newest first."""
    return " UNION ALL ".join([f"{_SELECT} WHERE {where}"] * parts) + f" {_PAGE}"


def filtered(
    state: JobState | None, queue: str | None, task: str | None
) -> tuple[str, list[str]] | None:
    """The listing when it needs no merge (``None`` when it does), with its parameters."""
    where, args = [], []
    for column, value in (("task", task), ("state", state), ("queue", queue)):
        if value is not None:
            where.append(f"{column} = ?")
            args.append(str(value))
    if task is None and (state is None) != (queue is None):
        return None  # state alone or queue alone: merged
    clause = f" WHERE {' AND '.join(where)}" if where else ""
    return f"{_SELECT}{clause} {_PAGE}", args


def by_state(state: JobState, queues: list[str]) -> tuple[str, list[str]]:
    """The jobs of ``state`` in the given queues (those holding jobs of that state)."""
    if len(queues) > MERGE_LIMIT:
        return f"{_SELECT} WHERE state = ? {_PAGE}", [state.value]
    args: list[str] = []
    for queue in queues:
        args += [state.value, queue]
    return merged(len(queues), "state = ? AND queue = ?"), args


def by_queue(queue: str) -> tuple[str, list[str]]:
    args: list[str] = []
    for state in JobState:
        args += [state.value, queue]
    return merged(len(JobState), "state = ? AND queue = ?"), args


#: the sequence above every job's: the first page of a keyset listing
TOP = 2**63 - 1


def keyset(
    conn: sqlite3.Connection,
    state: JobState | None,
    queue: str | None,
    task: str | None,
    below: int | None,
    n: int,
    columns: str = COLUMNS,
) -> list[Any]:
    """Up to ``n`` rows (of ``columns``) of the filters with ``seq < below``, newest first
    (``search_jobs``): the listing's index ranges, each entered at ``below``."""
    top = TOP if below is None else below
    plain = filtered(state, queue, task)
    if plain is not None:
        sql, args = plain
        sql = sql.replace(" ORDER BY", (" AND" if args else " WHERE") + " seq < ? ORDER BY")
        params: list[object] = [*args, top]
    else:
        if state is not None:
            found = conn.execute(QUEUES_OF_STATE, {"state": state.value})
            pairs = [(state.value, r[0]) for r in found]
            if not pairs:
                return []
            if len(pairs) > MERGE_LIMIT:
                pairs = []
        else:
            assert queue is not None
            pairs = [(s.value, queue) for s in JobState]
        if pairs:
            sql = merged(len(pairs), "state = ? AND queue = ? AND seq < ?")
            params = [x for s, q in pairs for x in (s, q, top)]
        else:
            sql = f"{_SELECT} WHERE state = ? AND seq < ? {_PAGE}"
            params = [state.value if state else "", top]
    sql = sql.replace(f"SELECT {COLUMNS} FROM", f"SELECT {columns} FROM")
    return conn.execute(sql, (*params, n, 0)).fetchall()


#: what a narrow search scan reads (``faena.core.search.Candidate``)
NARROW = "seq, enqueued_at, args, kwargs, error_message"


def by_seq(conn: sqlite3.Connection, seqs: list[int]) -> dict[int, Job]:
    """The jobs of these sequences (rowids) still stored."""
    marks = ",".join("?" * len(seqs))
    rows = conn.execute(f"SELECT {COLUMNS} FROM faena_jobs WHERE seq IN ({marks})", seqs)
    return {int(r[-1]): to_job(r) for r in rows}
