"""The PostgreSQL broker: the contract of :mod:`faena.brokers.protocol` in SQL.

Each call is one transaction on one pooled autocommit connection; the multi-step ones are
PL/pgSQL functions of the schema (``exchange`` finishes, reaps and claims; ``release``,
``enqueue``), so they cost one round trip. A group of new jobs without idempotency keys is
written with one ``COPY``. Times come from the injected clock, never from the server.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import psycopg
from psycopg.rows import tuple_row

from faena.brokers.listeners import Listener
from faena.brokers.postgres import listing, rows
from faena.brokers.postgres.config import PgConfig
from faena.brokers.postgres.corrupt import bury_overflowing
from faena.brokers.postgres.database import Conn, Database, array_literal
from faena.brokers.postgres.queries import Queries
from faena.brokers.postgres.schema import drop, migrate, stored_version
from faena.brokers.postgres.waker import ListenWaker
from faena.brokers.protocol import ClaimResult, HeartbeatResult, PoolStat, QueueStat, Reaped
from faena.brokers.refusals import (
    cancel_refused,
    key_taken,
    no_such_job,
    retry_refused,
    unknown_pool,
)
from faena.core import checks, lifecycle
from faena.core.clock import SYSTEM_CLOCK, Clock
from faena.core.job import Job, Lease, NewJob, Outcome
from faena.core.pools import check_pools
from faena.core.states import PENDING, JobState
from faena.errors import (
    BrokerError,
    InvalidTransitionError,
    JobNotFoundError,
    UnknownPoolError,
)

#: how many times enqueue looks again for the holder of a key that changed hands meanwhile
_KEY_RACE_TRIES = 5
#: a group of new jobs at least this big (and without idempotency keys) is written with COPY:
#: one round trip more than one statement, far less work for client and server (measured: the
#: two cross near 6-8 jobs)
_COPY_AT_LEAST = 8
#: queue lists whose array literal is kept (a worker asks for one list, over and over)
_ARRAYS_KEPT = 64


class PostgresBroker:
    kind = "postgres"
    shared_across_processes = True
    parallel_calls = True

    def __init__(self, config: PgConfig, *, clock: Clock = SYSTEM_CLOCK) -> None:
        self.config = config
        self._clock = clock
        self._db = Database(config)
        self._q = Queries.load(config)
        self._known_pools: set[str] = set()  # pools are never deleted: a safe cache
        self._wakers: list[ListenWaker] = []
        self._arrays: dict[tuple[str, ...], str] = {}

    @classmethod
    def from_url(cls, url: str, *, clock: Clock = SYSTEM_CLOCK) -> PostgresBroker:
        return cls(PgConfig.parse(url), clock=clock)

    def add_retry_listener(self, listener: Listener) -> None:
        self._db.retried.add(listener)

    def remove_retry_listener(self, listener: Listener) -> None:
        self._db.retried.remove(listener)

    @property
    def database(self) -> Database:
        """The connection pool (for tests and tools)."""
        return self._db

    def exists(self) -> bool:
        conn = self._db.connect()
        try:
            return stored_version(conn, self.config) is not None
        finally:
            conn.close()

    def setup(self) -> None:
        conn = self._db.connect()
        try:
            migrate(conn, self.config)
        except BrokerError:
            raise
        except Exception as exc:
            raise BrokerError(
                f"could not set up schema {self.config.schema!r} at "
                f"{self.config.display_url}: {exc}"
            ) from exc
        finally:
            conn.close()

    def destroy(self) -> None:
        """Drop the schema and everything in it (tests)."""
        self._db.run("destroy", lambda c: drop(c, self.config))

    def close(self) -> None:
        for waker in list(self._wakers):
            waker.close()
        self._wakers.clear()
        self._db.close()

    # configuration -------------------------------------------------------------------
    def set_pools(self, pools: Mapping[str, int]) -> None:
        checked = check_pools(pools) if pools else {}
        if not checked:
            return
        params = [{"name": n, "size": s} for n, s in checked.items()]

        def run(conn: Conn) -> None:
            with conn.transaction(), conn.cursor() as cur:
                cur.executemany(self._q.set_pool, params)

        self._db.run("set_pools", run)
        self._known_pools.update(checked)

    def set_parallelism(self, limit: int | None) -> None:
        self._db.run(
            "set_parallelism", lambda c: c.execute(self._q.set_parallelism, {"limit": limit})
        )

    def get_parallelism(self) -> int | None:
        row = self._db.run(
            "get_parallelism", lambda c: c.execute(self._q.get_parallelism).fetchone()
        )
        return None if row is None or row[0] is None else int(row[0])

    # producers -----------------------------------------------------------------------
    def enqueue(
        self, jobs: Sequence[NewJob], *, connection: psycopg.Connection[Any] | None = None
    ) -> list[Job]:
        """Store new jobs atomically.

        With ``connection`` (a psycopg 3 connection of the caller), the jobs are written in
        the caller's current transaction and nothing is committed: they exist, and workers
        are woken, only if and when the caller commits.
        """
        if not jobs:
            return []
        checks.check_new_jobs(jobs)
        if connection is not None:
            try:
                return self._enqueue(connection, jobs)
            except (UnknownPoolError, BrokerError):
                raise
            except Exception as exc:
                raise BrokerError(f"PostgreSQL enqueue failed: {exc}") from exc
        if len(jobs) >= _COPY_AT_LEAST and all(j.idempotency_key is None for j in jobs):
            return self._db.run("enqueue", lambda c: self._copy_or_enqueue(c, jobs))
        if len(jobs) == 1:
            return self._db.run("enqueue", lambda c: self._insert_or_enqueue(c, jobs[0]))
        return self._db.run("enqueue", lambda c: self._enqueue_here(c, jobs))

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
        for _ in range(_KEY_RACE_TRIES):
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

    # workers -------------------------------------------------------------------------
    def _exchange(
        self,
        what: str,
        outcomes: Sequence[Outcome],
        worker: str | None,
        queues: Sequence[str] | None,
        limit: int,
        lease_seconds: float,
    ) -> tuple[list[bool], ClaimResult]:
        """One call of the schema's ``exchange``: finish ``outcomes``, then (with ``queues``)
        reap and claim up to ``limit`` jobs. Parameters go as text: the JSON is ASCII, the
        names in the connection's encoding, ``now`` is read at each try (a call retried after
        an outage longer than a lease must not write a deadline that has already passed)."""
        checks.check_exchange(outcomes, worker, queues)
        keep = rows.once_each([o.lease for o in outcomes])
        done = rows.outcomes_json([outcomes[i] for i in keep]).encode() if keep else None
        wanted = None if queues is None else self._array(queues)
        fixed = (b"%d" % limit, repr(float(lease_seconds)).encode())

        def call(conn: Conn) -> list[tuple[Any, ...]]:
            encoding = conn.info.encoding
            params = (
                done,
                None if worker is None else worker.encode(encoding),
                None if wanted is None else wanted.encode(encoding),
                *fixed,
                repr(self._clock.now()).encode(),
            )
            try:
                return self._db.execute(conn, self._q.exchange, params)
            except psycopg.errors.NumericValueOutOfRange:  # a count set by hand to the limit
                # once more after the burial (another worker may have buried the job first);
                # nothing of the failed call was written: it is one statement
                bury_overflowing(conn, self._q.overflowing, self._q.bury, self._clock.now())
                return self._db.execute(conn, self._q.exchange, params)

        finished, result = rows.to_claim_result(self._db.run(what, call))
        return rows.applied(len(outcomes), keep, finished), result

    def _array(self, queues: Sequence[str]) -> str:
        """``queues`` as a ``text[]`` literal (a worker asks for the same ones every time)."""
        key = tuple(queues)
        text = self._arrays.get(key)
        if text is None:
            text = array_literal(key)
            if len(self._arrays) < _ARRAYS_KEPT:
                self._arrays[key] = text
        return text

    def claim(
        self, worker: str, queues: Sequence[str], limit: int, lease_seconds: float
    ) -> ClaimResult:
        return self._exchange("claim", (), worker, queues, limit, lease_seconds)[1]

    def heartbeat(
        self, worker: str, leases: Sequence[Lease], lease_seconds: float
    ) -> HeartbeatResult:
        checks.check_heartbeat(worker, leases)
        if not leases:
            return HeartbeatResult()
        params = {
            "ids": [lease.job_id for lease in leases],
            "attempts": [lease.attempt for lease in leases],
        }

        def beat(c: Any) -> list[Any]:
            deadline = self._clock.now() + lease_seconds  # taken at each try, after any outage
            found: list[Any] = c.execute(
                self._q.heartbeat, {**params, "deadline": deadline}
            ).fetchall()
            return found

        held = self._db.run("heartbeat", beat)
        alive = {row[0] for row in held}
        lost = frozenset(lease.job_id for lease in leases if lease.job_id not in alive)
        cancel = frozenset(row[0] for row in held if row[1])
        return HeartbeatResult(lost, cancel)

    def finish(self, outcomes: Sequence[Outcome]) -> list[bool]:
        if not outcomes:
            return []
        return self._exchange("finish", outcomes, None, None, 0, 0.0)[0]

    def finish_and_claim(
        self,
        outcomes: Sequence[Outcome],
        worker: str,
        queues: Sequence[str],
        limit: int,
        lease_seconds: float,
    ) -> tuple[list[bool], ClaimResult]:
        return self._exchange("finish_and_claim", outcomes, worker, queues, limit, lease_seconds)

    def release(self, leases: Sequence[Lease]) -> list[bool]:
        if not leases:
            return []
        checks.check_leases(leases)
        keep = rows.once_each(leases)
        params = {
            "ids": [leases[i].job_id for i in keep],
            "attempts": [leases[i].attempt for i in keep],
        }
        done = self._db.run("release", lambda c: c.execute(self._q.release, params).fetchall())
        return rows.applied(len(leases), keep, (row[0] for row in done))

    def reap(self) -> list[Reaped]:
        params = {"now": self._clock.now()}
        found = self._db.run("reap", lambda c: c.execute(self._q.reap, params).fetchall())
        return rows.to_claim_result(found)[1].reaped

    def waker(self, queues: Sequence[str]) -> ListenWaker:
        checks.check_queues(queues)
        waker = ListenWaker(self._db)
        self._wakers.append(waker)
        return waker

    def next_run_at(self, queues: Sequence[str]) -> float | None:
        checks.check_queues(queues)
        params = {"queues": list(queues)}
        row = self._db.run(
            "next_run_at", lambda c: c.execute(self._q.next_run_at, params).fetchone()
        )
        return None if row is None or row[0] is None else float(row[0])

    # operators -----------------------------------------------------------------------
    def get(self, job_id: str) -> Job | None:
        checks.check_text("job id", job_id)
        row = self._db.run("get", lambda c: c.execute(self._q.get, {"id": job_id}).fetchone())
        return None if row is None else rows.to_job(row)

    def list_jobs(
        self,
        *,
        state: JobState | None = None,
        queue: str | None = None,
        task: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[Job]:
        checks.check_filters(state, queue, task, limit, offset)

        def run(conn: Conn) -> list[Any]:
            return listing.fetch(conn, self.config.quoted_schema, state, queue, task, limit, offset)

        return [rows.to_job(row) for row in self._db.run("list_jobs", run)]

    def retry(self, job_id: str) -> Job:
        checks.check_text("job id", job_id)

        def run(conn: Conn) -> Job:
            with conn.transaction():
                job = self._lock_job(conn, job_id)
                if job.state not in (JobState.DEAD, JobState.CANCELLED):
                    raise InvalidTransitionError(retry_refused(job))
                if job.idempotency_key is not None:
                    params = {"key": job.idempotency_key, "id": job.id}
                    holder = conn.execute(self._q.key_holder, params).fetchone()
                    if holder is not None:
                        raise InvalidTransitionError(key_taken(job, holder[0]))
                now = self._clock.now()
                row = conn.execute(self._q.manual_retry, {"id": job_id, "now": now}).fetchone()
                conn.execute(self._q.notify, {"queue": job.queue})
            assert row is not None
            return rows.to_job(row)

        return self._db.run("retry", run)

    def cancel(self, job_id: str) -> Job:
        checks.check_text("job id", job_id)

        def run(conn: Conn) -> Job:
            with conn.transaction():
                job = self._lock_job(conn, job_id)
                if job.state in PENDING:
                    params = {"id": job_id, "now": self._clock.now()}
                    row = conn.execute(self._q.cancel_pending, params).fetchone()
                elif job.state is JobState.RUNNING:
                    row = conn.execute(self._q.cancel_running, {"id": job_id}).fetchone()
                else:
                    raise InvalidTransitionError(cancel_refused(job))
            assert row is not None
            return rows.to_job(row)

        return self._db.run("cancel", run)

    def _lock_job(self, conn: Conn, job_id: str) -> Job:
        row = conn.execute(self._q.get_for_update, {"id": job_id}).fetchone()
        if row is None:
            raise JobNotFoundError(no_such_job(job_id))
        return rows.to_job(row)

    def queue_stats(self) -> list[QueueStat]:
        params = {"now": self._clock.now()}
        found = self._db.run(
            "queue_stats", lambda c: c.execute(self._q.queue_stats, params).fetchall()
        )
        return [QueueStat(r[0], int(r[1]), int(r[2]), int(r[3]), float(r[4])) for r in found]

    def pool_stats(self) -> list[PoolStat]:
        params = {"now": self._clock.now()}
        found = self._db.run(
            "pool_stats", lambda c: c.execute(self._q.pool_stats, params).fetchall()
        )
        return [PoolStat(r[0], int(r[1]), int(r[2])) for r in found]

    def count_by_state(self) -> dict[tuple[str, JobState], int]:
        found = self._db.run(
            "count_by_state", lambda c: c.execute(self._q.count_by_state).fetchall()
        )
        return {(r[0], JobState(r[1])): int(r[2]) for r in found}

    def prune(self, older_than: float) -> int:
        params = {"older_than": older_than}
        return self._db.run("prune", lambda c: c.execute(self._q.prune, params).rowcount)
