"""The SQLite broker's operator side: inspecting jobs, retrying and cancelling them (one by
one, or a batch matching a filter in one transaction), statistics and pruning (the claim
path is in :mod:`faena.brokers.sqlite.broker`)."""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Sequence

from faena.brokers import autoscalers, bulk, registry
from faena.brokers.protocol import (
    AutoscalerRecord,
    AutoscalerReport,
    JobPage,
    JobSearch,
    JobStats,
    PoolStat,
    QueueStat,
    WorkerRecord,
    WorkerReport,
)
from faena.brokers.refusals import key_taken, no_such_job
from faena.brokers.sqlite import listing
from faena.brokers.sqlite import queries as q
from faena.brokers.sqlite import stats as sqlite_stats
from faena.brokers.sqlite.listing import by_seq
from faena.brokers.sqlite.rows import COLUMNS, to_job
from faena.brokers.sqlite.store import Store
from faena.brokers.sqlite.wake import Notifier
from faena.core import attempts, checks, lifecycle
from faena.core.clock import Clock
from faena.core.job import Job
from faena.core.retention import check_prune_limit
from faena.core.states import JobState
from faena.errors import InvalidTransitionError, JobNotFoundError

log = logging.getLogger("faena.brokers.sqlite")


class SQLiteOperators:
    _store: Store
    _clock: Clock
    _notifier: Notifier

    @staticmethod
    def _key_holder(conn: sqlite3.Connection, key: str) -> Job | None:
        row = conn.execute(q.KEY_HOLDER, (key,)).fetchone()
        return None if row is None else to_job(row)

    @staticmethod
    def _stored(conn: sqlite3.Connection, ids: list[str]) -> dict[str, Job]:
        """The jobs among ``ids`` that exist already, by id."""
        found: dict[str, Job] = {}
        for lo in range(0, len(ids), 500):
            chunk = ids[lo : lo + 500]
            marks = ",".join("?" * len(chunk))
            sql = f"SELECT {COLUMNS} FROM faena_jobs WHERE id IN ({marks})"
            for row in conn.execute(sql, chunk):
                job = to_job(row)
                found[job.id] = job
        return found

    def get(self, job_id: str) -> Job | None:
        checks.check_text("job id", job_id)
        row = (
            self._store.read()
            .execute(f"SELECT {COLUMNS}, attempts FROM faena_jobs WHERE id = ?", (job_id,))
            .fetchone()
        )
        if row is None:
            return None
        history, damaged = attempts.from_json(row[-1])
        if damaged:  # what can be read is shown, and the job itself always is
            log.warning(
                "attempt history partly unreadable",
                extra={"event": "broker.attempts_unreadable", "job_id": job_id},
            )
        return to_job(row).evolve(attempts=history)

    def job_keys(self, job_ids: Sequence[str]) -> dict[str, int]:
        ids = list(dict.fromkeys(job_ids))
        found: dict[str, int] = {}
        conn = self._store.read()
        for lo in range(0, len(ids), 500):
            chunk = ids[lo : lo + 500]
            marks = ",".join("?" * len(chunk))
            sql = f"SELECT id, seq FROM faena_jobs WHERE id IN ({marks})"
            found.update((str(i), int(seq)) for i, seq in conn.execute(sql, chunk))
        return found

    def job_by_key(self, key: int) -> Job | None:
        if not 0 < key < 2**63:
            return None
        return by_seq(self._store.read(), [key]).get(key)

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
        conn = self._store.read()
        plain = listing.filtered(state, queue, task)
        if plain is not None:
            sql, args = plain
        elif state is not None:
            queues = [r[0] for r in conn.execute(listing.QUEUES_OF_STATE, {"state": state.value})]
            if not queues:
                return []
            sql, args = listing.by_state(state, queues)
        else:
            assert queue is not None
            sql, args = listing.by_queue(queue)
        rows = conn.execute(sql, (*args, limit, offset)).fetchall()
        return [to_job(r) for r in rows]

    def search_jobs(
        self, search: JobSearch, *, limit: int = 100, cursor: str | None = None
    ) -> JobPage:
        return sqlite_stats.search_jobs(self._store.read(), search, limit, cursor)

    def job_stats(self, *, minutes: int = 60, queue: str | None = None) -> JobStats:
        return sqlite_stats.job_stats(self._store.read(), self._clock.now(), minutes, queue)

    def retry(self, job_id: str) -> Job:
        checks.check_text("job id", job_id)
        with self._store.write(durable=True) as conn:
            job = self._require(conn, job_id)
            lifecycle.check_retry(job)
            if job.idempotency_key is not None:
                holder = self._key_holder(conn, job.idempotency_key)
                if holder is not None and holder.id != job.id:
                    raise InvalidTransitionError(key_taken(job, holder.id))
            new = lifecycle.manual_retry(job, self._clock.now())
            conn.execute(q.MANUAL_RETRY, (new.run_at, job_id))
        self._notifier.notify()
        return new

    def cancel(self, job_id: str) -> Job:
        checks.check_text("job id", job_id)
        with self._store.write(durable=True) as conn:
            job = self._require(conn, job_id)
            new = lifecycle.cancel(job, self._clock.now())
            if new.state is not job.state:
                conn.execute(q.CANCEL_NOW, (new.state.value, new.finished_at, job_id))
            else:
                conn.execute(q.CANCEL_REQUEST, (job_id,))
        return new

    def retry_matching(
        self,
        *,
        state: JobState | None = None,
        queue: str | None = None,
        task: str | None = None,
        limit: int = bulk.MAX_BATCH,
    ) -> int:
        bulk.check_batch(state, queue, task, limit)
        states = bulk.retry_states(state)
        if not states:
            return 0
        changed = 0
        with self._store.write(durable=True) as conn:  # the batch: one transaction
            now = self._clock.now()
            sql, args = q.bulk_batch(states, queue, task, True, limit)
            for row in conn.execute(sql, args).fetchall():
                job = to_job(row)
                if job.idempotency_key is not None:
                    holder = self._key_holder(conn, job.idempotency_key)
                    if holder is not None and holder.id != job.id:
                        continue  # taken by a job retried in this batch: left alone
                conn.execute(q.MANUAL_RETRY, (lifecycle.manual_retry(job, now).run_at, job.id))
                changed += 1
        if changed:
            self._notifier.notify()
        return changed

    def cancel_matching(
        self,
        *,
        state: JobState | None = None,
        queue: str | None = None,
        task: str | None = None,
        limit: int = bulk.MAX_BATCH,
    ) -> int:
        bulk.check_batch(state, queue, task, limit)
        states = bulk.cancel_states(state)
        if not states:
            return 0
        with self._store.write(durable=True) as conn:  # the batch: one transaction
            now = self._clock.now()
            sql, args = q.bulk_batch(states, queue, task, False, limit)
            found = [to_job(row) for row in conn.execute(sql, args).fetchall()]
            for job in found:
                new = lifecycle.cancel(job, now)
                if new.state is not job.state:
                    conn.execute(q.CANCEL_NOW, (new.state.value, new.finished_at, job.id))
                else:
                    conn.execute(q.CANCEL_REQUEST, (job.id,))
        return len(found)

    @staticmethod
    def _require(conn: sqlite3.Connection, job_id: str) -> Job:
        row = conn.execute(f"SELECT {COLUMNS} FROM faena_jobs WHERE id = ?", (job_id,)).fetchone()
        if row is None:
            raise JobNotFoundError(no_such_job(job_id))
        return to_job(row)

    def queue_stats(self) -> list[QueueStat]:
        now = self._clock.now()
        merged: dict[str, list[float]] = {}
        for queue, waiting, scheduled, running, first in self._store.read().execute(
            q.QUEUE_STATS, {"now": now}
        ):
            row = merged.setdefault(queue, [0, 0, 0, 0.0])
            row[0] += waiting
            row[1] += scheduled
            row[2] += running
            row[3] = max(row[3], 0.0 if first is None else now - first)
        return [
            QueueStat(name, int(r[0]), int(r[1]), int(r[2]), float(r[3]))
            for name, r in sorted(merged.items())
        ]

    def pause_queue(self, queue: str) -> bool:
        checks.check_text("queue", queue)
        with self._store.write(durable=True) as conn:
            return conn.execute(q.PAUSE, (queue, self._clock.now())).rowcount > 0

    def resume_queue(self, queue: str) -> bool:
        checks.check_text("queue", queue)
        with self._store.write(durable=True) as conn:
            resumed = conn.execute(q.RESUME, (queue,)).rowcount > 0
        if resumed:
            self._notifier.notify()
        return resumed

    def paused_queues(self) -> frozenset[str]:
        return frozenset(r[0] for r in self._store.read().execute(q.PAUSED))

    def report_worker(self, report: WorkerReport) -> None:
        registry.check_report(report)
        with self._store.write() as conn:
            conn.execute(q.REPORT_WORKER, (report.id, self._clock.now(), registry.encode(report)))

    def list_workers(self) -> list[WorkerRecord]:
        rows = self._store.read().execute(q.LIST_WORKERS).fetchall()
        return [registry.decode(text, seen_at) for text, seen_at in rows]

    def prune_workers(self, older_than: float) -> int:
        with self._store.write() as conn:
            return conn.execute(q.PRUNE_WORKERS, (older_than,)).rowcount

    def report_autoscaler(self, report: AutoscalerReport) -> None:
        autoscalers.check_report(report)
        row = (report.name, self._clock.now(), autoscalers.encode(report))
        with self._store.write() as conn:
            conn.execute(q.REPORT_AUTOSCALER, row)

    def list_autoscalers(self) -> list[AutoscalerRecord]:
        rows = self._store.read().execute(q.LIST_AUTOSCALERS).fetchall()
        return [autoscalers.decode(text, updated_at) for text, updated_at in rows]

    def prune_autoscalers(self, older_than: float) -> int:
        with self._store.write() as conn:
            return conn.execute(q.PRUNE_AUTOSCALERS, (older_than,)).rowcount

    def pool_stats(self) -> list[PoolStat]:
        rows = self._store.read().execute(q.POOL_STATS, (self._clock.now(),)).fetchall()
        return [PoolStat(r[0], r[1], r[2]) for r in rows]

    def count_by_state(self) -> dict[tuple[str, JobState], int]:
        rows = self._store.read().execute(listing.COUNT_BY_STATE).fetchall()
        return {(r[0], JobState(r[1])): r[2] for r in rows}

    def prune(self, older_than: float, limit: int | None = None) -> int:
        cap = check_prune_limit(limit)
        with self._store.write() as conn:
            conn.execute(sqlite_stats.PRUNE_MINUTES, (older_than,))
            return conn.execute(q.PRUNE, (older_than, -1 if cap is None else cap)).rowcount
