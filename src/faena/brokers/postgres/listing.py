"""The SQL of the PostgreSQL broker's listings: each reads an index, newest first, and stops
after ``offset + limit`` rows (``tests/integration/test_query_plans.py`` checks the plans).

``jobs_state_queue (state, queue, seq)`` holds the jobs of one state and queue newest first;
a listing by state alone merges one such range per queue (a Merge Append), by queue alone one
per state; ``jobs_task (task, seq)`` serves a task filter, ``jobs_seq`` no filter at all. The
statements are built for the filters given (no ``%s IS NULL OR ...``, which would keep a
generic plan from using any index).
"""

from __future__ import annotations

from typing import Any

from faena.brokers.postgres.database import Conn
from faena.core.states import JobState

#: beyond this many queues of one state, a state listing sorts that state's rows instead
MERGE_LIMIT = 200
_PAGE = " ORDER BY seq DESC LIMIT %(limit)s OFFSET %(offset)s"


def queues_of_state(schema: str) -> str:
    """The queues holding jobs of ``%(state)s``: a skip scan, one index probe per queue."""
    return (
        "WITH RECURSIVE qs(q) AS ("
        f" SELECT (SELECT min(queue) FROM {schema}.jobs WHERE state = %(state)s)"
        f" UNION ALL SELECT (SELECT min(queue) FROM {schema}.jobs"
        "  WHERE state = %(state)s AND queue > qs.q) FROM qs WHERE qs.q IS NOT NULL"
        ") SELECT q FROM qs WHERE q IS NOT NULL"
    )


def _merged(schema: str, pairs: list[tuple[str, str]]) -> tuple[str, dict[str, Any]]:
    params: dict[str, Any] = {}
    parts = []
    for n, (state, queue) in enumerate(pairs):
        params[f"s{n}"], params[f"q{n}"] = state, queue
        parts.append(
            f"(SELECT j.* FROM {schema}.jobs j WHERE j.state = %(s{n})s AND j.queue = %(q{n})s"
            " ORDER BY j.seq DESC LIMIT %(reach)s)"
        )
    return f"SELECT m.* FROM ({' UNION ALL '.join(parts)}) m{_PAGE}", params


def plain(
    schema: str, state: JobState | None, queue: str | None, task: str | None
) -> tuple[str, dict[str, Any]] | None:
    """The listing when it needs no merge (``None`` when it does), with its parameters."""
    if task is None and (state is None) != (queue is None):
        return None
    where, params = [], {}
    for column, value in (("task", task), ("state", state), ("queue", queue)):
        if value is not None:
            where.append(f"j.{column} = %({column})s")
            params[column] = str(value)
    clause = f" WHERE {' AND '.join(where)}" if where else ""
    return f"SELECT j.* FROM {schema}.jobs j{clause}{_PAGE}", params


def by_state(schema: str, state: JobState, queues: list[str]) -> tuple[str, dict[str, Any]]:
    if len(queues) > MERGE_LIMIT:
        return f"SELECT j.* FROM {schema}.jobs j WHERE j.state = %(state)s{_PAGE}", {
            "state": state.value
        }
    return _merged(schema, [(state.value, q) for q in queues])


def by_queue(schema: str, queue: str) -> tuple[str, dict[str, Any]]:
    return _merged(schema, [(s.value, queue) for s in JobState])


def fetch(
    conn: Conn,
    schema: str,
    state: JobState | None,
    queue: str | None,
    task: str | None,
    limit: int,
    offset: int,
) -> list[tuple[Any, ...]]:
    """The rows of one listing page (``list_jobs``), newest first."""
    found = plain(schema, state, queue, task)
    if found is not None:
        sql, params = found
    elif state is not None:
        probe = conn.execute(queues_of_state(schema), {"state": state.value})
        queues = [r[0] for r in probe.fetchall()]
        if not queues:
            return []
        sql, params = by_state(schema, state, queues)
    else:
        assert queue is not None
        sql, params = by_queue(schema, queue)
    page = {"limit": limit, "offset": offset, "reach": limit + offset}
    return conn.execute(sql, {**params, **page}).fetchall()


#: what a narrow search scan reads (``faena.core.search.Candidate``)
NARROW = "j.seq, j.enqueued_at, j.args_json, j.kwargs_json, j.error_message"


def by_seq(schema: str) -> str:
    """The jobs of ``%(seqs)s`` (an array of sequences), by the index ``jobs_seq``."""
    return f"SELECT j.* FROM {schema}.jobs j WHERE j.seq = ANY(%(seqs)s)"


#: the sequence above every job's: the first page of a keyset listing
TOP = 2**63 - 1


def keyset(
    conn: Conn,
    schema: str,
    state: JobState | None,
    queue: str | None,
    task: str | None,
    below: int | None,
    n: int,
    columns: str = "j.*",
) -> list[tuple[Any, ...]]:
    """Up to ``n`` rows (of ``columns``) of the filters with ``seq < below``, newest first
    (``search_jobs``): the listing's index ranges, each entered at ``below``."""
    page = {"below": TOP if below is None else below, "limit": n, "offset": 0, "reach": n}
    found = plain(schema, state, queue, task)
    if found is not None:
        sql, params = found
        joiner = " AND" if params else " WHERE"
        sql = sql.replace(" ORDER BY", f"{joiner} j.seq < %(below)s ORDER BY", 1)
    else:
        if state is not None:
            probe = conn.execute(queues_of_state(schema), {"state": state.value})
            queues = [r[0] for r in probe.fetchall()]
            if not queues:
                return []
            sql, params = by_state(schema, state, queues)
        else:
            assert queue is not None
            sql, params = by_queue(schema, queue)
        sql = sql.replace(" ORDER BY j.seq", " AND j.seq < %(below)s ORDER BY j.seq")
        sql = sql.replace(
            f"j.state = %(state)s{_PAGE}", f"j.state = %(state)s AND j.seq < %(below)s{_PAGE}"
        )
    sql = sql.replace("SELECT j.*", f"SELECT {columns}")
    return conn.execute(sql, {**params, **page}).fetchall()
