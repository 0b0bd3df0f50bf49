"""SQLite broker: every claim is one ``BEGIN IMMEDIATE`` transaction, so claiming a job, its
pool slots and a place under the parallelism cap is atomic across processes."""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import parse_qs, urlsplit

from faena.brokers.protocol import ClaimResult, HeartbeatResult, Reaped
from faena.brokers.sqlite import queries as q
from faena.brokers.sqlite.operators import SQLiteOperators
from faena.brokers.sqlite.pipelines import SQLitePipelines
from faena.brokers.sqlite.producing import insert_one, write_jobs
from faena.brokers.sqlite.rows import (
    bury,
    error_columns,
    repeats,
    to_claimed_job,
    to_job,
    unreadable_field,
)
from faena.brokers.sqlite.schedules import SQLiteSchedules
from faena.brokers.sqlite.store import Store
from faena.brokers.sqlite.wake import Notifier, SocketWaker, wake_dir
from faena.core import checks, lifecycle
from faena.core.clock import SYSTEM_CLOCK, Clock
from faena.core.job import Job, Lease, NewJob, Outcome
from faena.core.pools import DEFAULT_POOL, DEFAULT_POOL_SLOTS, Admission, Candidate, check_pools
from faena.core.states import JobState
from faena.errors import (
    BrokerURLError,
)

_FETCH_ROUNDS = 8


class SQLiteBroker(SQLitePipelines, SQLiteSchedules, SQLiteOperators):
    kind = "sqlite"
    shared_across_processes = True
    parallel_calls = False

    def __init__(
        self,
        path: str,
        *,
        clock: Clock = SYSTEM_CLOCK,
        sync: str = "enqueue",
        existing: bool = False,
    ) -> None:
        self.path = path
        self._clock = clock
        self._store = Store(path, sync=sync, existing=existing)
        self._wake_dir = wake_dir(path)
        self._notifier = Notifier(self._wake_dir)

    @classmethod
    def from_url(
        cls, url: str, *, clock: Clock = SYSTEM_CLOCK, existing: bool = False
    ) -> SQLiteBroker:
        """``existing``: refuse a database file that does not exist instead of creating it."""
        parts = urlsplit(url)
        path = parts.path[1:] if parts.path.startswith("/") else parts.path
        if parts.netloc or not path or path == ":memory:":
            raise BrokerURLError(
                f"SQLite broker URL {url!r} must name a file: sqlite:///relative/faena.db or "
                f"sqlite:////absolute/faena.db (an in-memory SQLite database cannot be shared "
                f"by workers; use memory:// inside one process)"
            )
        params = parse_qs(parts.query)
        sync = params.get("sync", ["enqueue"])[0]
        if sync not in ("enqueue", "full", "normal"):
            raise BrokerURLError(
                f"SQLite broker URL {url!r}: sync={sync!r} is not one of enqueue (default: "
                f"enqueue fsyncs, worker writes do not), full (every commit fsyncs), normal "
                f"(no fsync: a power cut may lose recent enqueues)"
            )
        return cls(path, clock=clock, sync=sync, existing=existing)

    def setup(self) -> None:
        self._store.migrate()
        with self._store.write(durable=True) as conn:
            conn.execute(
                "INSERT OR IGNORE INTO faena_pools(name, size) VALUES (?, ?)",
                (DEFAULT_POOL, DEFAULT_POOL_SLOTS),
            )

    def exists(self) -> bool:
        return self._store.exists()

    def close(self) -> None:
        self._store.close()
        self._notifier.close()

    def destroy(self) -> None:
        self.close()

    # configuration -------------------------------------------------------------------
    def set_pools(self, pools: Mapping[str, int]) -> None:
        checked = check_pools(pools)
        with self._store.write(durable=True) as conn:
            conn.executemany(
                "INSERT INTO faena_pools(name, size) VALUES (?, ?) "
                "ON CONFLICT(name) DO UPDATE SET size = excluded.size",
                list(checked.items()),
            )
        self._notifier.notify()

    def set_parallelism(self, limit: int | None) -> None:
        with self._store.write(durable=True) as conn:
            if limit is None:
                conn.execute("DELETE FROM faena_settings WHERE key = 'parallelism'")
            else:
                conn.execute(
                    "INSERT INTO faena_settings(key, value) VALUES ('parallelism', ?) "
                    "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                    (limit,),
                )
        self._notifier.notify()

    def get_parallelism(self) -> int | None:
        row = (
            self._store.read()
            .execute("SELECT value FROM faena_settings WHERE key = 'parallelism'")
            .fetchone()
        )
        return None if row is None else int(row[0])

    # producers -----------------------------------------------------------------------
    def enqueue(self, jobs: Sequence[NewJob]) -> list[Job]:
        checks.check_new_jobs(jobs)
        now = self._clock.now()
        out = insert_one(self._store, jobs, now)
        if out is None:  # many jobs, a key, or the one job was refused: the general path
            with self._store.write(durable=True) as conn:
                out = write_jobs(conn, jobs, now)
        self._notifier.notify()
        return out

    def claim(
        self, worker: str, queues: Sequence[str], limit: int, lease_seconds: float
    ) -> ClaimResult:
        checks.check_claim(worker, queues)
        with self._store.write() as conn:
            result = self._claim(conn, worker, queues, limit, lease_seconds, self._clock.now())
        if any(r.new_state is JobState.QUEUED for r in result.reaped):
            self._notifier.notify()
        return result

    def _claim(
        self,
        conn: sqlite3.Connection,
        worker: str,
        queues: Sequence[str],
        limit: int,
        lease_seconds: float,
        now: float,
    ) -> ClaimResult:
        """Inside one write transaction: re-queue expired leases, then admit and claim."""
        admission, expired = self._admission(conn, now, max(limit, 0))
        reaped = self._reap(conn, now) if expired else []
        if limit <= 0 or not queues:
            return ClaimResult([], reaped, False)
        chosen: list[Job] = []
        seqs: list[int] = []
        fetch = limit + 2
        until = now + lease_seconds
        last: Any = None
        for _ in range(_FETCH_ROUNDS):
            after = None if last is None else (last[6], last[6], last[25])
            sql = q.candidates(len(queues), after is None)
            cur = conn.execute(sql, q.candidate_params(queues, now, after, fetch))
            rows: list[Any] = cur.fetchall()
            if not rows:
                break
            last, fetched = rows[-1], len(rows)
            rows = self._sound(conn, rows, now)
            by_id = {r[0]: r for r in rows}
            picked = admission.admit(Candidate(r[0], r[7], r[8]) for r in rows)
            chosen.extend(to_claimed_job(by_id[i], worker, now, until) for i in picked)
            seqs.extend(by_id[i][25] for i in picked)
            admission.limit -= len(picked)
            if admission.limit <= 0 or fetched < fetch or admission.parallelism_free == 0:
                break
            fetch *= 4
        if chosen:
            conn.execute(q.claim(len(seqs)), (worker, now, until, *seqs))
        return ClaimResult(chosen, reaped, admission.blocked)

    @staticmethod
    def _sound(conn: sqlite3.Connection, rows: list[Any], now: float) -> list[Any]:
        """The rows that can be read; each of the others is made dead by itself (a row that
        cannot be read must not fail the claim of the rest, again and again)."""
        sound = []
        for row in rows:
            bad = unreadable_field(row)
            if bad is None:
                sound.append(row)
            else:
                bury(conn, row, bad, now)
        return sound

    @staticmethod
    def _admission(conn: sqlite3.Connection, now: float, limit: int) -> tuple[Admission, int]:
        sizes: dict[str, int] = {}
        used: dict[str, int] = {}
        running = 0
        expired = 0
        parallelism: int | None = None
        for kind, name, a, b in conn.execute(q.CAPACITY, (now, now)):
            if kind == "p":
                sizes[name] = a
            elif kind == "s":
                parallelism = a
            elif kind == "x":
                expired = a
            else:
                used[name] = a
                running += b
        free = {name: size - used.get(name, 0) for name, size in sizes.items()}
        par = None if parallelism is None else parallelism - running
        return Admission(free, par, limit), expired

    def heartbeat(
        self, worker: str, leases: Sequence[Lease], lease_seconds: float
    ) -> HeartbeatResult:
        checks.check_heartbeat(worker, leases)
        lost: set[str] = set()
        cancel: set[str] = set()
        with self._store.write() as conn:
            until = self._clock.now() + lease_seconds
            for lease in leases:
                row = conn.execute(q.HEARTBEAT, (until, lease.job_id, lease.attempt)).fetchone()
                if row is None:
                    lost.add(lease.job_id)
                elif row[0]:
                    cancel.add(lease.job_id)
        return HeartbeatResult(frozenset(lost), frozenset(cancel))

    def finish(self, outcomes: Sequence[Outcome]) -> list[bool]:
        checks.check_outcomes(outcomes)
        with self._store.write() as conn:
            done, steps_ended = self._finish(conn, outcomes, self._clock.now())
        if steps_ended or any(o.state is JobState.FAILED for o in outcomes):
            self._notifier.notify()
        return done

    @staticmethod
    def _finish(
        conn: sqlite3.Connection, outcomes: Sequence[Outcome], now: float
    ) -> tuple[list[bool], bool]:
        """Record ``outcomes``: which were written (fenced), and whether a pipeline step ended
        (the hand-off trigger may have released its downstreams: the caller wakes workers).
        Not ``total_changes``: the counting trigger changes a row for every ending too."""
        repeated = repeats(outcomes)  # an attempt reported twice: the first report wins
        simple = [
            o.state is JobState.SUCCEEDED and not o.error and o.max_attempts is None
            for o in outcomes
        ]
        plain = [o for o, s, r in zip(outcomes, simple, repeated, strict=True) if s and not r]
        written: set[tuple[str, int]] = set()
        steps_ended = False
        if plain:  # the common case, one statement for the group
            params: list[object] = []
            for o in plain:
                params += (o.job_id, o.attempt, o.result_json)
            params += (now, now)
            rows = conn.execute(q.finish_succeeded(len(plain)), params).fetchall()
            written = {(r[0], r[1]) for r in rows}
            steps_ended = any(r[2] is not None for r in rows)
        done = []
        for o, plain_one, again in zip(outcomes, simple, repeated, strict=True):
            if again or plain_one:
                done.append(not again and (o.job_id, o.attempt) in written)
                continue
            etype, emsg, etb = error_columns(o.error)
            if o.state is JobState.FAILED:
                run_at = now if o.retry_at is None else o.retry_at
                cur = conn.execute(
                    q.FINISH_FAILED,
                    (
                        etype,
                        emsg,
                        etb,
                        run_at,
                        o.max_attempts,
                        now,
                        etype,
                        emsg,
                        etb,
                        o.job_id,
                        o.attempt,
                    ),
                )
                done.append(cur.rowcount == 1)
            else:
                row = conn.execute(
                    q.FINISH_FINAL,
                    (
                        o.state.value,
                        o.result_json,
                        etype,
                        etype,
                        emsg,
                        etype,
                        etb,
                        now,
                        o.max_attempts,
                        now,
                        o.state.value,
                        etype,
                        emsg,
                        etb,
                        o.job_id,
                        o.attempt,
                    ),
                ).fetchone()
                done.append(row is not None)
                steps_ended = steps_ended or (row is not None and row[0] is not None)
        return done, steps_ended

    def finish_and_claim(
        self,
        outcomes: Sequence[Outcome],
        worker: str,
        queues: Sequence[str],
        limit: int,
        lease_seconds: float,
    ) -> tuple[list[bool], ClaimResult]:
        checks.check_exchange(outcomes, worker, queues)
        with self._store.write() as conn:
            now = self._clock.now()
            done, steps_ended = self._finish(conn, outcomes, now)
            result = self._claim(conn, worker, queues, limit, lease_seconds, now)
        if steps_ended or any(o.state is JobState.FAILED for o in outcomes) or result.reaped:
            self._notifier.notify()
        return done, result

    def release(self, leases: Sequence[Lease]) -> list[bool]:
        checks.check_leases(leases)
        with self._store.write() as conn:
            now = self._clock.now()
            done = [
                conn.execute(q.RELEASE, (now, lz.job_id, lz.attempt)).rowcount == 1 for lz in leases
            ]
        self._notifier.notify()
        return done

    def reap(self) -> list[Reaped]:
        with self._store.write() as conn:
            reaped = self._reap(conn, self._clock.now())
        if reaped:
            self._notifier.notify()
        return reaped

    @staticmethod
    def _reap(conn: sqlite3.Connection, now: float) -> list[Reaped]:
        rows = conn.execute(q.EXPIRED, (now,)).fetchall()
        reaped = []
        for row in rows:
            bad = unreadable_field(row)
            if bad is not None:  # a running job whose row was damaged: dead, lease ended
                reaped.append(Reaped(bury(conn, row, bad, now), JobState.DEAD))
                continue
            old = to_job(row)
            job = lifecycle.expire(old, now)
            etype, emsg, etb = error_columns(job.error)
            lt, lm, ltb = error_columns(lifecycle.lost_error(old))
            conn.execute(
                q.SAVE_EXPIRED,
                (
                    job.state.value,
                    job.finished_at,
                    job.worker,
                    etype,
                    emsg,
                    etb,
                    old.worker,
                    now,
                    lt,
                    lm,
                    ltb,
                    job.id,
                ),
            )
            # as on the other SQL stores, a reap does not read the history
            reaped.append(Reaped(job.evolve(attempts=()), job.state))
        return reaped

    def waker(self, queues: Sequence[str]) -> SocketWaker:
        checks.check_queues(queues)
        return SocketWaker(self._wake_dir)

    def next_run_at(self, queues: Sequence[str]) -> float | None:
        checks.check_queues(queues)
        if not queues:
            return None
        row = self._store.read().execute(q.next_run_at(len(queues)), tuple(queues)).fetchone()
        return None if row is None or row[0] is None else float(row[0])
