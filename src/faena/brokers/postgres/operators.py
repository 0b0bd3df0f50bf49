"""The PostgreSQL broker's operator side: reading, retrying and cancelling jobs (one by one,
or a batch matching a filter in one transaction), statistics and pruning (the claim path is
in :mod:`faena.brokers.postgres.broker`, enqueueing in :mod:`faena.brokers.postgres.producing`).
Whether a retry or a cancel is allowed, and what a cancel does, is decided by
:mod:`faena.core.lifecycle`; this module writes the result."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from faena.brokers import autoscalers, bulk, registry
from faena.brokers.postgres import listing, rows
from faena.brokers.postgres import stats as pg_stats
from faena.brokers.postgres.config import PgConfig
from faena.brokers.postgres.database import Conn, Database
from faena.brokers.postgres.queries import Queries
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
from faena.core import attempts, checks, lifecycle, stats
from faena.core.clock import Clock
from faena.core.job import Job
from faena.core.retention import check_prune_limit
from faena.core.states import JobState
from faena.errors import InvalidTransitionError, JobNotFoundError

#: count_by_state folds the counters' shards of backends that are gone (migration 15's
#: fold_counts) when a (queue, state) has more shards than this; prune() always does
FOLD_AFTER_SHARDS = 32


class PostgresOperators:
    config: PgConfig
    _db: Database
    _q: Queries
    _clock: Clock

    def get(self, job_id: str) -> Job | None:
        checks.check_text("job id", job_id)
        row = self._db.run("get", lambda c: c.execute(self._q.get, {"id": job_id}).fetchone())
        if row is None:
            return None
        history, _ = attempts.from_json(row[-1])  # jsonb, written by faena only: readable
        # a success is not in the history table: the row holds it (0008_attempts.sql)
        return lifecycle.with_row_attempt(rows.to_job(row), history)

    def job_keys(self, job_ids: Sequence[str]) -> dict[str, int]:
        ids = [i for i in dict.fromkeys(job_ids) if "\x00" not in i]  # no stored id has one
        sql = f"SELECT id, seq FROM {self.config.quoted_schema}.jobs WHERE id = ANY(%(ids)s)"

        def run(conn: Conn) -> list[Any]:
            return conn.execute(sql, {"ids": ids}).fetchall()

        return {str(i): int(seq) for i, seq in self._db.run("job_keys", run)} if ids else {}

    def job_by_key(self, key: int) -> Job | None:
        if not 0 < key < 2**63:
            return None
        sql = listing.by_seq(self.config.quoted_schema)

        def run(conn: Conn) -> Any:
            return conn.execute(sql, {"seqs": [key]}).fetchone()

        row = self._db.run("job_by_key", run)
        return None if row is None else rows.to_job(row)

    def search_jobs(
        self, search: JobSearch, *, limit: int = 100, cursor: str | None = None
    ) -> JobPage:
        return pg_stats.search_jobs(self._db, self.config.quoted_schema, search, limit, cursor)

    def job_stats(self, *, minutes: int = 60, queue: str | None = None) -> JobStats:
        now = self._clock.now()
        return pg_stats.job_stats(self._db, self.config.quoted_schema, now, minutes, queue)

    def retry(self, job_id: str) -> Job:
        checks.check_text("job id", job_id)

        def run(conn: Conn) -> Job:
            with conn.transaction():
                job = self._lock_job(conn, job_id)
                lifecycle.check_retry(job)
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
                new = lifecycle.cancel(job, self._clock.now())
                if new.state is not job.state:  # ended now
                    params = {"id": job_id, "state": new.state.value, "now": new.finished_at}
                    row = conn.execute(self._q.cancel_pending, params).fetchone()
                else:  # asked to stop
                    row = conn.execute(self._q.cancel_running, {"id": job_id}).fetchone()
            assert row is not None
            return rows.to_job(row)

        return self._db.run("cancel", run)

    def retry_matching(
        self,
        *,
        state: JobState | None = None,
        queue: str | None = None,
        task: str | None = None,
        limit: int = bulk.MAX_BATCH,
    ) -> int:
        bulk.check_batch(state, queue, task, limit)
        states = [s.value for s in bulk.retry_states(state)]
        if not states:
            return 0

        def run(conn: Conn) -> int:
            queues: set[str] = set()
            changed = 0
            with conn.transaction():  # the batch: one transaction
                now = self._clock.now()
                params = {"states": states, "queue": queue, "task": task, "limit": limit}
                for row in conn.execute(self._q.bulk_retry_batch, params).fetchall():
                    job = rows.to_job(row)
                    if job.idempotency_key is not None:
                        held = {"key": job.idempotency_key, "id": job.id}
                        if conn.execute(self._q.key_holder, held).fetchone() is not None:
                            continue  # taken by a job retried in this batch: left alone
                    conn.execute(self._q.manual_retry, {"id": job.id, "now": now})
                    queues.add(job.queue)
                    changed += 1
                for name in sorted(queues):
                    conn.execute(self._q.notify, {"queue": name})
            return changed

        return self._db.run("retry_matching", run)

    def cancel_matching(
        self,
        *,
        state: JobState | None = None,
        queue: str | None = None,
        task: str | None = None,
        limit: int = bulk.MAX_BATCH,
    ) -> int:
        bulk.check_batch(state, queue, task, limit)
        states = [s.value for s in bulk.cancel_states(state)]
        if not states:
            return 0

        def run(conn: Conn) -> int:
            with conn.transaction():  # the batch: one transaction
                now = self._clock.now()
                params = {"states": states, "queue": queue, "task": task, "limit": limit}
                found = [rows.to_job(r) for r in conn.execute(self._q.bulk_cancel_batch, params)]
                for job in found:
                    new = lifecycle.cancel(job, now)
                    if new.state is not job.state:  # ended now
                        ended = {"id": job.id, "state": new.state.value, "now": new.finished_at}
                        conn.execute(self._q.cancel_pending, ended)
                    else:  # asked to stop
                        conn.execute(self._q.cancel_running, {"id": job.id})
            return len(found)

        return self._db.run("cancel_matching", run)

    def _lock_job(self, conn: Conn, job_id: str) -> Job:
        row = conn.execute(self._q.get_for_update, {"id": job_id}).fetchone()
        if row is None:
            raise JobNotFoundError(no_such_job(job_id))
        return rows.to_job(row)

    def pause_queue(self, queue: str) -> bool:
        checks.check_text("queue", queue)
        params = {"queue": queue, "now": self._clock.now()}
        row = self._db.run(
            "pause_queue", lambda c: c.execute(self._q.pause_queue, params).fetchone()
        )
        return row is not None

    def resume_queue(self, queue: str) -> bool:
        checks.check_text("queue", queue)

        def run(conn: Conn) -> bool:
            with conn.transaction():
                row = conn.execute(self._q.resume_queue, {"queue": queue}).fetchone()
                if row is not None:
                    conn.execute(self._q.notify, {"queue": queue})
            return row is not None

        return self._db.run("resume_queue", run)

    def paused_queues(self) -> frozenset[str]:
        found = self._db.run("paused_queues", lambda c: c.execute(self._q.paused_queues).fetchall())
        return frozenset(r[0] for r in found)

    def report_worker(self, report: WorkerReport) -> None:
        registry.check_report(report)
        params = {"id": report.id, "now": self._clock.now(), "report": registry.encode(report)}
        self._db.run("report_worker", lambda c: c.execute(self._q.report_worker, params))

    def list_workers(self) -> list[WorkerRecord]:
        found = self._db.run("list_workers", lambda c: c.execute(self._q.list_workers).fetchall())
        return [registry.decode(text, seen_at) for text, seen_at in found]

    def prune_workers(self, older_than: float) -> int:
        params = {"older_than": older_than}
        return self._db.run(
            "prune_workers", lambda c: c.execute(self._q.prune_workers, params).rowcount
        )

    def report_autoscaler(self, report: AutoscalerReport) -> None:
        autoscalers.check_report(report)
        params = {
            "name": report.name,
            "now": self._clock.now(),
            "report": autoscalers.encode(report),
        }
        self._db.run("report_autoscaler", lambda c: c.execute(self._q.report_autoscaler, params))

    def list_autoscalers(self) -> list[AutoscalerRecord]:
        found = self._db.run(
            "list_autoscalers", lambda c: c.execute(self._q.list_autoscalers).fetchall()
        )
        return [autoscalers.decode(text, updated_at) for text, updated_at in found]

    def prune_autoscalers(self, older_than: float) -> int:
        params = {"older_than": older_than}
        return self._db.run(
            "prune_autoscalers", lambda c: c.execute(self._q.prune_autoscalers, params).rowcount
        )

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
        if any(int(r[3]) > FOLD_AFTER_SHARDS for r in found):
            self._db.run("fold_counts", lambda c: c.execute(self._q.fold_counts))
        return {(r[0], JobState(r[1])): int(r[2]) for r in found if int(r[2]) != 0}

    def prune(self, older_than: float, limit: int | None = None) -> int:
        params = {"older_than": older_than, "limit": check_prune_limit(limit)}
        # job_stats' counters: the shards of the last day's finished minutes folded into one
        # row each (the current and the previous minute are left to the finishes writing
        # them), and the minutes before older_than deleted
        before = stats.minute_of(self._clock.now()) - 60.0
        fold = {"from": before - 60.0 * stats.MAX_MINUTES, "before": before}

        def run(conn: Conn) -> int:
            # count_by_state's counters: the shards of backends that are gone (each statement
            # here is a transaction of its own: the fold's waits on nothing, and the delete
            # below never runs in a transaction holding a shard row the fold took)
            conn.execute(self._q.fold_counts)
            conn.execute(self._q.fold_minutes, fold)
            conn.execute(self._q.prune_minutes, params)
            return int(conn.execute(self._q.prune, params).rowcount)

        return self._db.run("prune", run)
