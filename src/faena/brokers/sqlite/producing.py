"""Writing new jobs in SQLite: one job alone as one statement, or any jobs in a write
transaction the caller holds (``enqueue`` and ``fire_schedule``,
:mod:`faena.brokers.sqlite.schedules`, share it)."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from faena.brokers.refusals import unknown_pool
from faena.brokers.sqlite import queries as q
from faena.brokers.sqlite.operators import SQLiteOperators
from faena.brokers.sqlite.store import Store
from faena.core import lifecycle
from faena.core.job import Job, NewJob
from faena.errors import UnknownPoolError


def insert_one(store: Store, jobs: Sequence[NewJob], now: float) -> list[Job] | None:
    """The common producer call, one job without an idempotency key, as one statement in a
    transaction of its own (a durable commit per job: each statement saved is CPU the fsync
    waits on). The INSERT checks the pool and the id itself; None when it wrote nothing (the
    pool is unknown or the id taken: :func:`write_jobs` then says which) or the call is not
    that one."""
    if len(jobs) != 1 or jobs[0].idempotency_key is not None:
        return None
    job = lifecycle.create(jobs[0], now)
    if store.write_one(q.INSERT_ONE, (*q.insert_row(job), job.pool), durable=True) == 1:
        return [job]
    return None


def write_jobs(conn: sqlite3.Connection, jobs: Sequence[NewJob], now: float) -> list[Job]:
    """Insert ``jobs`` in the caller's write transaction (checked already); the jobs
    created, or those holding their ids or keys. An unknown pool writes nothing."""
    out: list[Job] = []
    pools = {r[0] for r in conn.execute("SELECT name FROM faena_pools")}
    for new in jobs:
        if new.pool not in pools:
            raise UnknownPoolError(unknown_pool(new.pool, pools))
    plain: list[tuple[object, ...]] = []
    by_key: dict[str, Job] = {}
    stored = SQLiteOperators._stored(conn, [new.id for new in jobs])
    for new in jobs:
        if new.id in stored:  # sent again: the job it created before
            out.append(stored[new.id])
            continue
        key = new.idempotency_key
        if key is not None:
            held = by_key.get(key) or SQLiteOperators._key_holder(conn, key)
            if held is not None:
                out.append(held)
                continue
        job = lifecycle.create(new, now)
        stored[job.id] = job
        if key is not None:
            by_key[key] = job
            if plain:  # keep enqueue order: flush before the keyed insert
                conn.executemany(q.INSERT, plain)
                plain = []
            conn.execute(q.INSERT, q.insert_row(job))
        else:
            plain.append(q.insert_row(job))
        out.append(job)
    if plain:
        conn.executemany(q.INSERT, plain)
    return out
