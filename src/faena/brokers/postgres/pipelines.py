"""Pipeline runs of the PostgreSQL broker: a run and all its steps' jobs in one transaction;
the hand-off itself is the ``jobs_hand_off`` trigger (migration 12), which runs inside the
statement that ends a step (the finish of ``exchange``, a reap, a cancel)."""

from __future__ import annotations

import json
from functools import cached_property
from typing import Any

from faena.brokers.postgres.config import PgConfig
from faena.brokers.postgres.database import Conn, Database
from faena.brokers.postgres.queries import render
from faena.brokers.refusals import no_such_run, unknown_pool
from faena.brokers.run_rows import run_record
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

_SQL = {
    "run": "SELECT id, pipeline, run_key, params, created_at FROM @schema@.runs",
    "note_ended": (
        "UPDATE @schema@.runs SET ended_noted = %(at)s WHERE id = %(id)s "
        "AND ended_noted IS DISTINCT FROM %(at)s"
    ),
    "steps": (
        "SELECT s.name, s.job_id, s.upstreams, s.rule, s.results, j.state, j.error_type, "
        "j.enqueued_at, j.run_at, j.started_at, j.finished_at "
        "FROM @schema@.steps s LEFT JOIN @schema@.jobs j ON j.id = s.job_id "
        "WHERE s.run_id = %(id)s ORDER BY s.ord"
    ),
    "insert_run": (
        "INSERT INTO @schema@.runs (id, pipeline, run_key, params, created_at) "
        "VALUES (%(id)s, %(pipeline)s, %(key)s, %(params)s, %(now)s) "
        "ON CONFLICT (run_key) DO NOTHING RETURNING id"
    ),
    "insert_job": (
        "INSERT INTO @schema@.jobs (id, task, queue, args_json, kwargs_json, state, priority, "
        "pool, pool_slots, max_attempts, timeout, enqueued_at, run_at, run_id) VALUES "
        "(%(id)s, %(task)s, %(queue)s, %(args)s, %(kwargs)s, %(state)s, %(priority)s, "
        "%(pool)s, %(slots)s, %(max)s, %(timeout)s, %(now)s, %(run_at)s, %(run)s)"
    ),
    "insert_step": (
        "INSERT INTO @schema@.steps (job_id, run_id, ord, name, rule, results, kwargs, "
        "upstreams, pending, failed) VALUES (%(id)s, %(run)s, %(ord)s, %(name)s, %(rule)s, "
        "%(results)s, %(kwargs)s, %(ups)s, %(pending)s, 0)"
    ),
    "insert_edge": ("INSERT INTO @schema@.edges (upstream, downstream) VALUES (%(up)s, %(down)s)"),
    "pools": "SELECT name FROM @schema@.pools",
    "retry_steps": (
        "SELECT s.job_id, j.state, s.rule, s.kwargs, "
        "ARRAY(SELECT e.upstream FROM @schema@.edges e WHERE e.downstream = s.job_id) "
        "FROM @schema@.steps s JOIN @schema@.jobs j ON j.id = s.job_id "
        "WHERE s.run_id = %(id)s ORDER BY s.ord FOR UPDATE OF j"
    ),
    "reset": (
        "UPDATE @schema@.jobs SET state = %(state)s, tries = 0, run_at = %(run_at)s, "
        "kwargs_json = %(kwargs)s, finished_at = NULL, result_json = NULL, "
        "cancel_requested = false, lease_expires_at = NULL, worker = NULL, error_type = NULL, "
        "error_message = NULL, error_traceback = NULL WHERE id = %(id)s"
    ),
    "lock_live": (
        "SELECT j.id, j.state FROM @schema@.steps s JOIN @schema@.jobs j ON j.id = s.job_id "
        "WHERE s.run_id = %(id)s ORDER BY s.ord DESC FOR UPDATE OF j"
    ),
    "cancel_now": (
        "UPDATE @schema@.jobs SET state = 'cancelled', finished_at = %(now)s WHERE id = %(id)s"
    ),
    "cancel_flag": "UPDATE @schema@.jobs SET cancel_requested = true WHERE id = %(id)s",
    "notify": "SELECT pg_notify('@channel@', '')",
    # whether the step takes results, then each upstream's name and result (a step without
    # upstreams: one row with NULLs)
    "upstream_results": (
        "SELECT s.results, us.name, u.result_json FROM @schema@.steps s "
        "LEFT JOIN @schema@.edges e ON e.downstream = s.job_id "
        "LEFT JOIN @schema@.jobs u ON u.id = e.upstream "
        "LEFT JOIN @schema@.steps us ON us.job_id = e.upstream WHERE s.job_id = %(id)s"
    ),
}


class PostgresPipelines:
    config: PgConfig
    _db: Database
    _clock: Clock

    @cached_property
    def _pq(self) -> dict[str, str]:
        return {name: render(text, self.config) for name, text in _SQL.items()}

    def _record(self, conn: Conn, row: Any, created: bool = False) -> RunRecord:
        steps = conn.execute(self._pq["steps"], {"id": row[0]}).fetchall()
        return run_record(row, steps, created)

    def _find(self, conn: Conn, where: str, value: str) -> Any:
        return conn.execute(self._pq["run"] + f" WHERE {where} = %(v)s", {"v": value}).fetchone()

    def create_run(self, run: NewRun) -> RunRecord:
        check_run(run)
        checks.check_new_jobs([s.job for s in run.steps])

        def write(conn: Conn) -> RunRecord:
            with conn.transaction():
                pools = {r[0] for r in conn.execute(self._pq["pools"]).fetchall()}
                for step in run.steps:
                    if step.job.pool not in pools:
                        raise UnknownPoolError(unknown_pool(step.job.pool, pools))
                now = self._clock.now()
                params = {
                    "id": run.id,
                    "pipeline": run.pipeline,
                    "key": run.key,
                    "params": run.params_json,
                    "now": now,
                }
                if conn.execute(self._pq["insert_run"], params).fetchone() is None:
                    return self._record(conn, self._find(conn, "run_key", run.key))
                ids = {s.name: s.job.id for s in run.steps}
                for ord_, step in enumerate(run.steps):
                    job = lifecycle.create(step.job, now)
                    if step.upstreams:
                        job = job.evolve(state=JobState.SCHEDULED, run_at=BLOCKED_AT)
                    conn.execute(
                        self._pq["insert_job"],
                        {
                            "id": job.id,
                            "task": job.task,
                            "queue": job.queue,
                            "args": job.args_json,
                            "kwargs": job.kwargs_json,
                            "state": job.state.value,
                            "priority": job.priority,
                            "pool": job.pool,
                            "slots": job.pool_slots,
                            "max": job.max_attempts,
                            "timeout": job.timeout,
                            "now": now,
                            "run_at": job.run_at,
                            "run": run.id,
                        },
                    )
                    conn.execute(
                        self._pq["insert_step"],
                        {
                            "id": job.id,
                            "run": run.id,
                            "ord": ord_,
                            "name": step.name,
                            "rule": step.rule.value,
                            "results": step.results,
                            "kwargs": step.job.kwargs_json,
                            "ups": json.dumps(list(step.upstreams)),
                            "pending": len(step.upstreams),
                        },
                    )
                    for up in step.upstreams:
                        conn.execute(self._pq["insert_edge"], {"up": ids[up], "down": job.id})
                return self._record(conn, self._find(conn, "id", run.id), created=True)

        return self._db.run("create_run", write)

    def get_run(self, run_id: str) -> RunRecord | None:
        checks.check_text("run id", run_id)

        def read(conn: Conn) -> RunRecord | None:
            row = self._find(conn, "id", run_id)
            return None if row is None else self._record(conn, row)

        return self._db.run("get_run", read)

    def note_run_ended(self, run_id: str, finished_at: float) -> bool:
        checks.check_text("run id", run_id)
        params = {"id": run_id, "at": finished_at}

        def write(conn: Conn) -> bool:
            return conn.execute(self._pq["note_ended"], params).rowcount == 1

        return self._db.run("note_run_ended", write)

    def list_runs(
        self, *, pipeline: str | None = None, limit: int = 100, offset: int = 0
    ) -> list[RunRecord]:
        checks.check_filters(None, None, pipeline, limit, offset)

        def read(conn: Conn) -> list[RunRecord]:
            where = "" if pipeline is None else " WHERE pipeline = %(p)s"
            sql = self._pq["run"] + where + " ORDER BY seq DESC LIMIT %(l)s OFFSET %(o)s"
            found = conn.execute(sql, {"p": pipeline, "l": limit, "o": offset}).fetchall()
            return [self._record(conn, r) for r in found]

        return self._db.run("list_runs", read)

    def _require_run(self, conn: Conn, run_id: str) -> Any:
        row = self._find(conn, "id", run_id)
        if row is None:
            raise JobNotFoundError(no_such_run(run_id))
        return row

    def retry_run(self, run_id: str) -> RunRecord:
        checks.check_text("run id", run_id)

        def write(conn: Conn) -> RunRecord:
            with conn.transaction():
                row = self._require_run(conn, run_id)
                now = self._clock.now()
                steps = conn.execute(self._pq["retry_steps"], {"id": run_id}).fetchall()
                plan = plan_retry(
                    [(r[0], JobState(r[1]), TriggerRule(r[2]), list(r[4])) for r in steps]
                )
                kwargs = {r[0]: r[3] for r in steps}
                for job_id, action in plan.items():
                    if action is RetryAction.KEEP:
                        continue
                    blocked = action is RetryAction.WAIT
                    if not blocked:  # runs now: with its upstreams' results, if it takes them
                        kwargs[job_id] = self._run_kwargs(conn, job_id, kwargs[job_id])
                    state = JobState.SCHEDULED if blocked else JobState.QUEUED
                    conn.execute(
                        self._pq["reset"],
                        {
                            "state": state.value,
                            "run_at": BLOCKED_AT if blocked else now,
                            "kwargs": kwargs[job_id],
                            "id": job_id,
                        },
                    )
                conn.execute(self._pq["notify"])
                return self._record(conn, row)

        return self._db.run("retry_run", write)

    def _run_kwargs(self, conn: Conn, job_id: str, declared: str) -> str:
        """The keyword arguments of a step that runs again now (results added if it takes
        them, as its release adds them)."""
        found = conn.execute(self._pq["upstream_results"], {"id": job_id}).fetchall()
        if not found or not found[0][0]:
            return declared
        return with_results(declared, upstream_results({r[1]: r[2] for r in found if r[1]}))

    def cancel_run(self, run_id: str) -> RunRecord:
        checks.check_text("run id", run_id)

        def write(conn: Conn) -> RunRecord:
            with conn.transaction():
                row = self._require_run(conn, run_id)
                now = self._clock.now()
                # downstreams first, so a cancel releases nothing
                for job_id, state in conn.execute(self._pq["lock_live"], {"id": run_id}):
                    if JobState(state) not in LIVE:
                        continue
                    if JobState(state) is JobState.RUNNING:
                        conn.execute(self._pq["cancel_flag"], {"id": job_id})
                    else:
                        conn.execute(self._pq["cancel_now"], {"id": job_id, "now": now})
                return self._record(conn, row)

        return self._db.run("cancel_run", write)
