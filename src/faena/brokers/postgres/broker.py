"""The PostgreSQL broker: the contract of :mod:`faena.brokers.protocol` in SQL.

Each call is one transaction on one pooled autocommit connection; the multi-step ones are
PL/pgSQL functions of the schema (``exchange`` finishes, reaps and claims; ``release``,
``enqueue``), so they cost one round trip. A group of new jobs without idempotency keys is
written with one ``COPY``. Times come from the injected clock, never from the server.

This module holds the configuration and the worker's calls (claim, heartbeat, finish, release,
reap); writing new jobs is :mod:`faena.brokers.postgres.producing`, the operators' calls
:mod:`faena.brokers.postgres.operators` (the entry points ``enqueue`` and ``list_jobs`` stay
here).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import psycopg

from faena.brokers.listeners import Listener
from faena.brokers.postgres import listing, rows
from faena.brokers.postgres.config import PgConfig
from faena.brokers.postgres.corrupt import bury_overflowing
from faena.brokers.postgres.database import Conn, Database, array_literal
from faena.brokers.postgres.operators import PostgresOperators
from faena.brokers.postgres.pipelines import PostgresPipelines
from faena.brokers.postgres.producing import COPY_AT_LEAST
from faena.brokers.postgres.queries import Queries
from faena.brokers.postgres.schedules import PostgresSchedules
from faena.brokers.postgres.schema import drop, migrate, stored_version
from faena.brokers.postgres.waker import ListenWaker
from faena.brokers.protocol import ClaimResult, HeartbeatResult, Reaped
from faena.core import checks
from faena.core.clock import SYSTEM_CLOCK, Clock
from faena.core.job import Job, Lease, NewJob, Outcome
from faena.core.pools import check_pools
from faena.core.states import JobState
from faena.errors import BrokerError, UnknownPoolError

#: queue lists whose array literal is kept (a worker asks for one list, over and over)
_ARRAYS_KEPT = 64


class PostgresBroker(PostgresPipelines, PostgresSchedules, PostgresOperators):
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
        if len(jobs) >= COPY_AT_LEAST and all(j.idempotency_key is None for j in jobs):
            return self._db.run("enqueue", lambda c: self._copy_or_enqueue(c, jobs))
        if len(jobs) == 1:
            return self._db.run("enqueue", lambda c: self._insert_or_enqueue(c, jobs[0]))
        return self._db.run("enqueue", lambda c: self._enqueue_here(c, jobs))

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
        # fencing by attempt: a lease named for an attempt that is not the live one is lost
        # even when the same call names the live attempt too (which is renewed)
        alive = {(row[0], row[1]) for row in held}
        lost = frozenset(x.job_id for x in leases if (x.job_id, x.attempt) not in alive)
        cancel = frozenset(row[0] for row in held if row[2])
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
            "now": self._clock.now(),
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

    # operators (the rest: faena.brokers.postgres.operators) ----------------------------
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
