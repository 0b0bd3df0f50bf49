"""The PostgreSQL broker's producer side: writing new jobs in the fewest round trips.

One job is a prepared ``INSERT``; a group without idempotency keys one ``COPY``; anything else
(and any of these that meets a taken id or key) the schema's ``enqueue`` function, which
returns the job holding each taken key. The entry point is
:meth:`faena.brokers.postgres.broker.PostgresBroker.enqueue`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import psycopg
from psycopg.rows import tuple_row

from faena.brokers.postgres import rows
from faena.brokers.postgres.config import PgConfig
from faena.brokers.postgres.database import Conn, Database
from faena.brokers.postgres.queries import Queries
from faena.brokers.refusals import unknown_pool
from faena.core import lifecycle
from faena.core.clock import Clock
from faena.core.job import Job, NewJob
from faena.errors import BrokerError, UnknownPoolError

#: how many times enqueue looks again for the holder of a key that changed hands meanwhile
KEY_RACE_TRIES = 5
#: a group of new jobs at least this big (and without idempotency keys) is written with COPY:
#: one round trip more than one statement, far less work for client and server (measured: the
#: two cross near 6-8 jobs)
COPY_AT_LEAST = 8


class PostgresProducer:
    config: PgConfig
    _db: Database
    _q: Queries
    _clock: Clock
    _known_pools: set[str]

    def _insert_or_enqueue(self, conn: Conn, new: NewJob) -> list[Job]:
        """One job, on one of our connections: a plain ``INSERT`` (prepared, parameters as
        text), a quarter less work for the server than the ``enqueue`` function. If its id or
        idempotency key is taken, nothing is written and it goes the way of
        :meth:`_enqueue_here`, which returns the job holding it."""
        self._check_pools(conn, {new.pool})
        now = self._clock.now()
        job = lifecycle.create(new, now)
        encoding = conn.info.encoding
        params = (
            new.id.encode(encoding),
            new.task.encode(encoding),
            new.queue.encode(encoding),
            new.args_json.encode(encoding),
            new.kwargs_json.encode(encoding),
            job.state.value.encode(),
            b"%d" % new.priority,
            new.pool.encode(encoding),
            b"%d" % new.pool_slots,
            b"%d" % new.max_attempts,
            None if new.timeout is None else repr(float(new.timeout)).encode(),
            None if new.idempotency_key is None else new.idempotency_key.encode(encoding),
            repr(now).encode(),
            repr(job.run_at).encode(),
        )
        if self._db.execute(conn, self._q.insert_job, params):
            return [job]
        return self._enqueue_here(conn, [new])

    def _copy_or_enqueue(self, conn: Conn, jobs: Sequence[NewJob]) -> list[Job]:
        """A group without idempotency keys, on one of our autocommit connections: one
        ``COPY`` into the jobs table, one transaction (the schema's insert trigger wakes the
        workers). If an id is taken (the group was sent before), nothing is written and the
        group goes the way of :meth:`_enqueue_here`, which returns the stored jobs."""
        self._check_pools(conn, {j.pool for j in jobs})
        now = self._clock.now()
        out = []
        try:
            with conn.cursor() as cur, cur.copy(self._q.copy_jobs) as copy:
                copy.set_types(rows.COPY_TYPES)
                for new in jobs:  # the server stores rows while later ones are made
                    job = lifecycle.create(new, now)
                    copy.write_row(rows.copy_row(new, job))
                    out.append(job)
        except psycopg.errors.UniqueViolation:
            return self._enqueue_here(conn, jobs)
        return out

    def _enqueue_here(self, conn: Conn, jobs: Sequence[NewJob]) -> list[Job]:
        """``jobs`` on one of our connections: the prepared ``enqueue``, parameters as text
        (the JSON is ASCII)."""

        def send(batch: str, now: float) -> list[tuple[Any, ...]]:
            params = (batch.encode(), repr(now).encode())
            return self._db.execute(conn, self._q.enqueue, params)

        return self._enqueue_with(conn, jobs, send)

    def _enqueue(self, conn: psycopg.Connection[Any], jobs: Sequence[NewJob]) -> list[Job]:
        """``jobs`` in the transaction of the caller's connection, whatever its row factory."""

        def send(batch: str, now: float) -> list[tuple[Any, ...]]:
            with psycopg.RawCursor(conn, row_factory=tuple_row) as cur:
                return cur.execute(self._q.enqueue.sql, (batch, now)).fetchall()

        return self._enqueue_with(conn, jobs, send)

    def _enqueue_with(
        self,
        conn: psycopg.Connection[Any],
        jobs: Sequence[NewJob],
        send: Callable[[str, float], list[tuple[Any, ...]]],
    ) -> list[Job]:
        self._check_pools(conn, {j.pool for j in jobs})
        now = self._clock.now()
        out = [lifecycle.create(new, now) for new in jobs]
        todo = list(range(len(jobs)))
        for _ in range(KEY_RACE_TRIES):
            skipped = send(rows.new_jobs_json([jobs[i] for i in todo], [out[i] for i in todo]), now)
            if not skipped:
                return out
            holders = {h for _, h in skipped if h is not None}
            found = {}
            if holders:
                with conn.cursor(row_factory=tuple_row) as cur:
                    cur.execute(self._q.jobs_by_ids, {"ids": list(holders)})
                    found = {job.id: job for job in map(rows.to_job, cur.fetchall())}
            retry = []
            for ord_, holder in skipped:
                index = todo[ord_ - 1]
                if holder is None or holder not in found:
                    retry.append(index)
                else:
                    out[index] = found[holder]
            if not retry:
                return out
            todo = retry
        raise BrokerError(
            f"enqueue kept racing for idempotency keys at {self.config.display_url}; try again"
        )

    def _check_pools(self, conn: psycopg.Connection[Any], pools: set[str]) -> None:
        if pools <= self._known_pools:
            return
        with conn.cursor(row_factory=tuple_row) as cur:
            known = {row[0] for row in cur.execute(self._q.pool_names).fetchall()}
        self._known_pools.update(known)
        for pool in sorted(pools - known):
            raise UnknownPoolError(unknown_pool(pool, known))
