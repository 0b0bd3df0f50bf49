"""SQL of the SQLite broker (statements too small to earn a .sql file each)."""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from typing import Any

from faena.brokers.literals import sql_list
from faena.brokers.sqlite.rows import COLUMNS
from faena.core.attempts import MAX_ATTEMPTS_KEPT
from faena.core.job import Job
from faena.core.states import HOLDS_IDEMPOTENCY_KEY, LEASED, LIVE, PENDING, TERMINAL, JobState

# the state sets of faena.core.states, as SQL lists (never written here by hand)
_PENDING = sql_list(PENDING)
_HOLDS_KEY = sql_list(HOLDS_IDEMPOTENCY_KEY)
_TERMINAL = sql_list(TERMINAL)
_LIVE = sql_list(LIVE)

INSERT = (
    "INSERT INTO faena_jobs (id, task, queue, args, kwargs, state, priority, pool, pool_slots, "
    "attempt, tries, max_attempts, timeout, idempotency_key, enqueued_at, run_at) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 0, 0, ?, ?, ?, ?, ?)"
)

# one new job in one statement (producing.insert_one): nothing written if its pool (the last
# parameter) is unknown or its id taken; the general path then says which
INSERT_ONE = (
    "INSERT INTO faena_jobs (id, task, queue, args, kwargs, state, priority, pool, pool_slots, "
    "attempt, tries, max_attempts, timeout, idempotency_key, enqueued_at, run_at) "
    "SELECT ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, 0, ?, ?, ?, ?, ? "
    "WHERE EXISTS (SELECT 1 FROM faena_pools WHERE name = ?) ON CONFLICT (id) DO NOTHING"
)


def insert_row(job: Job) -> tuple[object, ...]:
    return (
        job.id,
        job.task,
        job.queue,
        job.args_json,
        job.kwargs_json,
        job.state.value,
        job.priority,
        job.pool,
        job.pool_slots,
        job.max_attempts,
        job.timeout,
        job.idempotency_key,
        job.enqueued_at,
        job.run_at,
    )


KEY_HOLDER = f"SELECT {COLUMNS} FROM faena_jobs WHERE idempotency_key = ? AND state IN {_HOLDS_KEY}"

# capacity at the start of a claim: pool sizes, the parallelism cap, slots held by live
# leases, and how many leases expired (only then does the claim reap)
CAPACITY = (
    "SELECT 'p', name, size, 0 FROM faena_pools "
    "UNION ALL SELECT 's', key, value, 0 FROM faena_settings WHERE key = 'parallelism' "
    "UNION ALL SELECT 'u', pool, SUM(pool_slots), COUNT(*) FROM faena_jobs "
    "WHERE state = 'running' AND lease_expires_at > ? GROUP BY pool "
    "UNION ALL SELECT 'x', '', COUNT(*), 0 FROM faena_jobs "
    "WHERE state = 'running' AND lease_expires_at <= ?"
)


PAUSED = "SELECT queue FROM faena_paused_queues"


@cache
def candidates(n_queues: int, first: bool = False) -> str:
    """Runnable jobs by priority then enqueue order, after a (priority, seq) position (the
    ``first`` page: from the start), in the queues given that are not paused (one statement:
    the claim reads the paused queues in its own write transaction). SQLite keeps any text in
    a numeric column and orders text after every number, so rows whose run_at or priority is
    not a number are picked too: the claim then makes them dead instead of leaving them unseen
    forever. Parameters: :func:`candidate_params`.

    One queue is one range of the claim index, already in order. Several queues are one such
    range each, each cut at the LIMIT, then merged: ``queue IN (...)`` would read every
    runnable job of those queues and sort them all, at every claim (6.6 ms instead of 0.5 for
    a claim of 8 from two queues holding 20,000 jobs)."""
    after = "" if first else "AND (priority < ? OR (priority = ? AND seq > ?)) "
    one = (
        f"SELECT {COLUMNS} FROM faena_jobs "
        f"WHERE state IN {_PENDING} AND queue = ? AND queue NOT IN ({PAUSED}) "
        f"AND (run_at <= ? OR typeof(run_at) NOT IN ('real', 'integer')) "
        f"{after}ORDER BY priority DESC, seq LIMIT ?"
    )
    if n_queues == 1:
        return one
    each = " UNION ALL ".join([f"SELECT * FROM ({one})"] * n_queues)
    return f"SELECT * FROM ({each}) ORDER BY priority DESC, seq LIMIT ?"


def candidate_params(
    queues: Sequence[str], now: float, after: tuple[Any, Any, Any] | None, fetch: int
) -> list[object]:
    """The parameters of ``candidates(len(queues), after is None)``."""
    params: list[object] = []
    for queue in queues:
        params += (queue, now, *(after or ()), fetch)
    if len(queues) > 1:
        params.append(fetch)
    return params


REPORT_WORKER = (
    "INSERT INTO faena_workers (id, seen_at, report) VALUES (?, ?, ?) "
    "ON CONFLICT(id) DO UPDATE SET seen_at = excluded.seen_at, report = excluded.report"
)
LIST_WORKERS = "SELECT report, seen_at FROM faena_workers ORDER BY id"
PRUNE_WORKERS = "DELETE FROM faena_workers WHERE seen_at < ?"
REPORT_AUTOSCALER = (
    "INSERT INTO faena_autoscalers (name, updated_at, report) VALUES (?, ?, ?) "
    "ON CONFLICT(name) DO UPDATE SET updated_at = excluded.updated_at, report = excluded.report"
)
LIST_AUTOSCALERS = "SELECT report, updated_at FROM faena_autoscalers ORDER BY name"
PRUNE_AUTOSCALERS = "DELETE FROM faena_autoscalers WHERE updated_at < ?"

PAUSE = "INSERT INTO faena_paused_queues (queue, paused_at) VALUES (?, ?) ON CONFLICT DO NOTHING"
RESUME = "DELETE FROM faena_paused_queues WHERE queue = ?"


@cache
def next_run_at(n_queues: int) -> str:
    marks = ", ".join("?" * n_queues)
    return (
        f"SELECT MIN(run_at) FROM faena_jobs WHERE state IN {_PENDING} AND queue IN ({marks}) "
        f"AND queue NOT IN ({PAUSED})"
    )


@cache
def claim(n_jobs: int) -> str:
    """Start the attempts of ``n_jobs`` candidates, by their rowids (``seq``: a seek in the
    table itself, not one in the id index and then one in the table)."""
    marks = ", ".join("?" * n_jobs)
    return (
        "UPDATE faena_jobs SET state = 'running', attempt = attempt + 1, tries = tries + 1, "
        f"worker = ?, started_at = ?, lease_expires_at = ? WHERE seq IN ({marks})"
    )


_FENCE = "WHERE id = ? AND attempt = ? AND state = 'running'"


def append_attempt(
    finished: str, outcome: str, et: str, em: str, tb: str, worker: str = "worker", t: str = ""
) -> str:
    """``attempts = ...``: the history with the current attempt's record added, the oldest
    dropped past ``MAX_ATTEMPTS_KEPT``; a history that is not a JSON array (damaged) starts
    over. Each argument is an SQL expression (a ``?`` or a column); ``t`` qualifies the
    row's columns (``faena_jobs.``) where a join makes them ambiguous."""
    a = f"{t}attempts"
    kept = (
        f"CASE WHEN json_valid({a}) AND json_type({a}) = 'array' THEN "
        f"(CASE WHEN json_array_length({a}) >= {MAX_ATTEMPTS_KEPT} "
        f"THEN json_remove({a}, '$[0]') ELSE {a} END) ELSE '[]' END"
    )
    record = (
        f"json_object('n', {t}attempt, 'w', {worker}, 's', {t}started_at, 'f', {finished}, "
        f"'o', {outcome}, 'et', {et}, 'em', {em}, 'tb', {tb})"
    )
    return f"attempts = json_insert({kept}, '$[#]', {record})"


_FAILED_ATTEMPT = append_attempt("?", "'failed'", "?", "?", "?")
_RELEASED_ATTEMPT = append_attempt("?", "'released'", "NULL", "NULL", "NULL")

HEARTBEAT = f"UPDATE faena_jobs SET lease_expires_at = ? {_FENCE} RETURNING cancel_requested"

FINISH_FAILED = (
    "UPDATE faena_jobs SET state = 'failed', error_type = ?, error_message = ?, "
    "error_traceback = ?, run_at = ?, lease_expires_at = NULL, worker = NULL, "
    f"max_attempts = COALESCE(?, max_attempts), {_FAILED_ATTEMPT} {_FENCE}"
)

# a final outcome without an error keeps the error of an earlier attempt; the run of a
# pipeline step (its ending may release downstream steps), NULL for any other job
FINISH_FINAL = (
    "UPDATE faena_jobs SET state = ?, result = ?, "
    "error_type = COALESCE(?, error_type), "
    "error_message = CASE WHEN ? IS NULL THEN error_message ELSE ? END, "
    "error_traceback = CASE WHEN ? IS NULL THEN error_traceback ELSE ? END, "
    "finished_at = ?, lease_expires_at = NULL, "
    f"max_attempts = COALESCE(?, max_attempts), {append_attempt('?', '?', '?', '?', '?')} "
    f"{_FENCE} RETURNING run_id"
)


@cache
def finish_succeeded(n_jobs: int) -> str:
    """Record the success of ``n_jobs`` attempts: params (id, attempt, result)..., then now;
    returns each attempt recorded with its job's run (NULL unless a pipeline step)."""
    rows = ", ".join(["(?, ?, ?)"] * n_jobs)
    return (
        "WITH v(id, attempt, result) AS (VALUES " + rows + ") "
        "UPDATE faena_jobs SET state = 'succeeded', result = v.result, finished_at = ?, "
        "lease_expires_at = NULL, "
        + append_attempt(
            "?", "'succeeded'", "NULL", "NULL", "NULL", "faena_jobs.worker", "faena_jobs."
        )
        + " FROM v "
        "WHERE faena_jobs.id = v.id AND faena_jobs.attempt = v.attempt "
        "AND faena_jobs.state = 'running' "
        "RETURNING faena_jobs.id, faena_jobs.attempt, faena_jobs.run_id"
    )


RELEASE = (
    "UPDATE faena_jobs SET state = 'queued', tries = MAX(tries - 1, 0), "
    f"lease_expires_at = NULL, worker = NULL, "
    f"{_RELEASED_ATTEMPT} {_FENCE}"
)

EXPIRED = f"SELECT {COLUMNS} FROM faena_jobs WHERE state = 'running' AND lease_expires_at <= ?"

SAVE_EXPIRED = (
    "UPDATE faena_jobs SET state = ?, finished_at = ?, worker = ?, lease_expires_at = NULL, "
    "error_type = COALESCE(?, error_type), error_message = COALESCE(?, error_message), "
    "error_traceback = COALESCE(?, error_traceback), "
    + append_attempt("?", "'lost'", "?", "?", "?", worker="?")
    + " WHERE id = ?"
)

MANUAL_RETRY = (
    "UPDATE faena_jobs SET state = 'queued', tries = 0, run_at = ?, finished_at = NULL, "
    "result = NULL, cancel_requested = 0, lease_expires_at = NULL, worker = NULL WHERE id = ?"
)

# one part per partial index (pending, running), so no scan of finished jobs
# the live jobs of each queue from the counters faena_job_counts (migration 12); the later
# ones and the first run_at from the index faena_jobs_due (queue, run_at) of the waiting
# jobs: per queue a range of the later entries and one entry, the due ones are not read
QUEUE_STATS = (
    "SELECT c.queue, c.pending - ("
    "  SELECT COUNT(*) FROM faena_jobs INDEXED BY faena_jobs_due"
    f"  WHERE queue = c.queue AND state IN {_PENDING} AND run_at > :now"
    "), ("
    "  SELECT COUNT(*) FROM faena_jobs INDEXED BY faena_jobs_due"
    f"  WHERE queue = c.queue AND state IN {_PENDING} AND run_at > :now"
    "), c.running, ("
    "  SELECT MIN(run_at) FROM faena_jobs INDEXED BY faena_jobs_due"
    f"  WHERE queue = c.queue AND state IN {_PENDING}"
    ") FROM ("
    f"  SELECT queue, SUM(CASE WHEN state IN {_PENDING} THEN n ELSE 0 END) AS pending,"
    "   SUM(CASE WHEN state = 'running' THEN n ELSE 0 END) AS running"
    f"  FROM faena_job_counts WHERE state IN {_LIVE} GROUP BY queue HAVING SUM(n) <> 0"
    ") c"
)

POOL_STATS = (
    "SELECT p.name, p.size, COALESCE(u.used, 0) FROM faena_pools p LEFT JOIN ("
    "  SELECT pool, SUM(pool_slots) AS used FROM faena_jobs "
    "  WHERE state = 'running' AND lease_expires_at > ? GROUP BY pool"
    ") u ON u.pool = p.name ORDER BY p.name"
)

# at most ? of them (-1: no limit)
PRUNE = (
    "DELETE FROM faena_jobs WHERE id IN (SELECT id FROM faena_jobs "
    f"WHERE finished_at < ? AND state IN {_TERMINAL} LIMIT ?)"
)

# a cancel writes what faena.core.lifecycle.cancel changed: the state, or only the request
CANCEL_NOW = "UPDATE faena_jobs SET state = ?, finished_at = ? WHERE id = ?"
CANCEL_REQUEST = "UPDATE faena_jobs SET cancel_requested = 1 WHERE id = ?"


# bulk actions (faena.brokers.bulk): the next batch of jobs matching the filters, newest first
_KEY_FREE = (
    "(idempotency_key IS NULL OR NOT EXISTS (SELECT 1 FROM faena_jobs o WHERE "
    f"o.idempotency_key = faena_jobs.idempotency_key AND o.id <> faena_jobs.id "
    f"AND o.state IN {_HOLDS_KEY}))"
)


def bulk_batch(
    states: list[JobState], queue: str | None, task: str | None, retry: bool, limit: int
) -> tuple[str, list[object]]:
    """The jobs a bulk retry (``retry``) or cancel would change: in ``states``; for a retry
    only those whose idempotency key no live job holds, for a cancel only running jobs not
    flagged yet."""
    parts, args = [], []
    for state in states:
        flagged = state in LEASED and not retry
        parts.append("(state = ? AND cancel_requested = 0)" if flagged else "state = ?")
        args.append(state.value)
    where = [f"({' OR '.join(parts)})"]
    for column, value in (("queue", queue), ("task", task)):
        if value is not None:
            where.append(f"{column} = ?")
            args.append(value)
    if retry:
        where.append(_KEY_FREE)
    sql = f"SELECT {COLUMNS} FROM faena_jobs WHERE {' AND '.join(where)} ORDER BY seq DESC LIMIT ?"
    return sql, [*args, limit]
