"""Pipeline runs of the SQLite broker: a run and all its steps' jobs in one write
transaction; the hand-off itself is the ``faena_hand_off`` trigger (migration 8), which runs
inside the statement that ends a step, whichever path ends it (finish, reap, cancel)."""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from faena.brokers.refusals import no_such_run, unknown_pool
from faena.brokers.run_rows import run_record
from faena.brokers.sqlite import queries as q
from faena.brokers.sqlite.store import Store
from faena.brokers.sqlite.wake import Notifier
from faena.core import checks, lifecycle
from faena.core.clock import Clock
from faena.core.dependencies import (
    BLOCKED_AT,
    RetryAction,
    TriggerRule,
    plan_retry,
    upstream_results,
    with_results,
)
from faena.core.runs import NewRun, RunRecord, check_run
from faena.core.states import LIVE, JobState
from faena.errors import JobNotFoundError, UnknownPoolError

_RUN = "SELECT id, pipeline, run_key, params, created_at FROM faena_runs"
_STEPS = (
    "SELECT s.name, s.job_id, s.upstreams, s.rule, s.results, j.state, j.error_type, "
    "j.enqueued_at, j.run_at, j.started_at, j.finished_at "
    "FROM faena_steps s LEFT JOIN faena_jobs j ON j.id = s.job_id WHERE s.run_id = ? "
    "ORDER BY s.ord"
)


def _record(conn: sqlite3.Connection, row: Any, created: bool = False) -> RunRecord:
    return run_record(row, conn.execute(_STEPS, (row[0],)), created)


class SQLitePipelines:
    _store: Store
    _clock: Clock
    _notifier: Notifier

    def create_run(self, run: NewRun) -> RunRecord:
        check_run(run)
        checks.check_new_jobs([s.job for s in run.steps])
        with self._store.write(durable=True) as conn:
            held = conn.execute(_RUN + " WHERE run_key = ?", (run.key,)).fetchone()
            if held is not None:
                return _record(conn, held)
            pools = {r[0] for r in conn.execute("SELECT name FROM faena_pools")}
            for step in run.steps:
                if step.job.pool not in pools:
                    raise UnknownPoolError(unknown_pool(step.job.pool, pools))
            now = self._clock.now()
            conn.execute(
                "INSERT INTO faena_runs (id, pipeline, run_key, params, created_at) "
                "VALUES (?, ?, ?, ?, ?)",
                (run.id, run.pipeline, run.key, run.params_json, now),
            )
            ids = {s.name: s.job.id for s in run.steps}
            for ord_, step in enumerate(run.steps):
                job = lifecycle.create(step.job, now)
                if step.upstreams:
                    job = job.evolve(state=JobState.SCHEDULED, run_at=BLOCKED_AT)
                conn.execute(q.INSERT, q.insert_row(job))
                conn.execute("UPDATE faena_jobs SET run_id = ? WHERE id = ?", (run.id, job.id))
                conn.execute(
                    "INSERT INTO faena_steps (job_id, run_id, ord, name, rule, results, kwargs, "
                    "upstreams, pending, failed) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 0)",
                    (
                        job.id,
                        run.id,
                        ord_,
                        step.name,
                        step.rule.value,
                        int(step.results),
                        step.job.kwargs_json,
                        json.dumps(list(step.upstreams)),
                        len(step.upstreams),
                    ),
                )
                conn.executemany(
                    "INSERT INTO faena_edges (upstream, downstream) VALUES (?, ?)",
                    [(ids[u], job.id) for u in step.upstreams],
                )
            row = conn.execute(_RUN + " WHERE id = ?", (run.id,)).fetchone()
            record = _record(conn, row, created=True)
        self._notifier.notify()
        return record

    def get_run(self, run_id: str) -> RunRecord | None:
        checks.check_text("run id", run_id)
        conn = self._store.read()
        row = conn.execute(_RUN + " WHERE id = ?", (run_id,)).fetchone()
        return None if row is None else _record(conn, row)

    def note_run_ended(self, run_id: str, finished_at: float) -> bool:
        checks.check_text("run id", run_id)
        with self._store.write() as conn:  # not durable: a note lost logs the end twice
            cur = conn.execute(
                "UPDATE faena_runs SET ended_noted = ? WHERE id = ? "
                "AND (ended_noted IS NULL OR ended_noted <> ?)",
                (finished_at, run_id, finished_at),
            )
            return cur.rowcount == 1

    def list_runs(
        self, *, pipeline: str | None = None, limit: int = 100, offset: int = 0
    ) -> list[RunRecord]:
        checks.check_filters(None, None, pipeline, limit, offset)
        conn = self._store.read()
        if pipeline is None:
            rows = conn.execute(_RUN + " ORDER BY seq DESC LIMIT ? OFFSET ?", (limit, offset))
        else:
            rows = conn.execute(
                _RUN + " WHERE pipeline = ? ORDER BY seq DESC LIMIT ? OFFSET ?",
                (pipeline, limit, offset),
            )
        return [_record(conn, r) for r in rows.fetchall()]

    @staticmethod
    def _require_run(conn: sqlite3.Connection, run_id: str) -> Any:
        checks.check_text("run id", run_id)
        row = conn.execute(_RUN + " WHERE id = ?", (run_id,)).fetchone()
        if row is None:
            raise JobNotFoundError(no_such_run(run_id))
        return row

    def retry_run(self, run_id: str) -> RunRecord:
        with self._store.write(durable=True) as conn:
            row = self._require_run(conn, run_id)
            now = self._clock.now()
            steps = conn.execute(
                "SELECT s.job_id, j.state, s.rule, s.kwargs FROM faena_steps s "
                "JOIN faena_jobs j ON j.id = s.job_id WHERE s.run_id = ? ORDER BY s.ord",
                (run_id,),
            ).fetchall()
            ups: dict[str, list[str]] = {}
            for up, down in conn.execute(
                "SELECT e.upstream, e.downstream FROM faena_edges e JOIN faena_steps s "
                "ON s.job_id = e.downstream WHERE s.run_id = ?",
                (run_id,),
            ):
                ups.setdefault(down, []).append(up)
            plan = plan_retry(
                [(r[0], JobState(r[1]), TriggerRule(r[2]), ups.get(r[0], [])) for r in steps]
            )
            kwargs = {r[0]: r[3] for r in steps}
            for job_id, action in plan.items():
                if action is RetryAction.KEEP:
                    continue
                blocked = action is RetryAction.WAIT
                if not blocked:  # runs now: with its upstreams' results, if it takes them
                    kwargs[job_id] = self._run_kwargs(conn, job_id, kwargs[job_id])
                conn.execute(
                    "UPDATE faena_jobs SET state = ?, tries = 0, run_at = ?, kwargs = ?, "
                    "finished_at = NULL, result = NULL, cancel_requested = 0, "
                    "lease_expires_at = NULL, worker = NULL, error_type = NULL, "
                    "error_message = NULL, error_traceback = NULL WHERE id = ?",
                    (
                        (JobState.SCHEDULED if blocked else JobState.QUEUED).value,
                        BLOCKED_AT if blocked else now,
                        kwargs[job_id],
                        job_id,
                    ),
                )
            record = _record(conn, row)
        self._notifier.notify()
        return record

    @staticmethod
    def _run_kwargs(conn: sqlite3.Connection, job_id: str, declared: str) -> str:
        """The keyword arguments of a step that runs again now (results added if it takes
        them, as its release adds them)."""
        takes = conn.execute("SELECT results FROM faena_steps WHERE job_id = ?", (job_id,))
        if not takes.fetchone()[0]:
            return declared
        rows = conn.execute(
            "SELECT us.name, u.result FROM faena_edges e JOIN faena_jobs u ON u.id = e.upstream "
            "JOIN faena_steps us ON us.job_id = e.upstream WHERE e.downstream = ?",
            (job_id,),
        ).fetchall()
        return with_results(declared, upstream_results({r[0]: r[1] for r in rows}))

    def cancel_run(self, run_id: str) -> RunRecord:
        with self._store.write(durable=True) as conn:
            row = self._require_run(conn, run_id)
            now = self._clock.now()
            live = [s for s in reversed(_record(conn, row).steps) if s.state in LIVE]
            for step in live:  # downstreams first: a cancel releases nothing
                if step.state is JobState.RUNNING:
                    conn.execute(q.CANCEL_REQUEST, (step.job_id,))
                else:
                    conn.execute(q.CANCEL_NOW, (JobState.CANCELLED.value, now, step.job_id))
            record = _record(conn, row)
        return record
