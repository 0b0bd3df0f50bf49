"""The Redis broker: every state change is one Lua function (see ``lua/``), run atomically.

Keys live under ``{prefix}:`` (a hash tag, so a Redis Cluster keeps them in one slot). Time
always comes from the injected clock and is passed to the functions; the server's own clock is
never used for a decision.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from redis.exceptions import RedisError, ResponseError

from faena.brokers.bulk import BulkActions
from faena.brokers.listeners import Listener
from faena.brokers.protocol import (
    ClaimResult,
    HeartbeatResult,
    PoolStat,
    QueueStat,
    Reaped,
)
from faena.brokers.redis.admin import RedisRegistry
from faena.brokers.redis.codec import (
    FIELDS,
    enqueue_args,
    num,
    outcome_args,
    rows,
    to_job,
    to_jobs,
)
from faena.brokers.redis.connection import (
    FunctionCall,
    Link,
    RedisURL,
    call,
    describe,
    make_client,
    parse_url,
    wrapped,
)
from faena.brokers.redis.pipelines import RedisPipelines
from faena.brokers.redis.schedules import RedisSchedules
from faena.brokers.redis.scripts import NAMES, library
from faena.brokers.redis.views import RedisViews
from faena.brokers.redis.waker import RedisWaker
from faena.brokers.refusals import (
    cancel_refused,
    key_taken,
    no_such_job,
    retry_refused,
    unknown_pool,
)
from faena.core import attempts, checks, lifecycle
from faena.core.clock import SYSTEM_CLOCK, Clock
from faena.core.job import Job, Lease, NewJob, Outcome
from faena.core.pools import DEFAULT_POOL, DEFAULT_POOL_SLOTS, check_pools
from faena.core.retention import check_prune_limit
from faena.core.states import JobState
from faena.errors import (
    BrokerError,
    InvalidTransitionError,
    JobNotFoundError,
    SchemaError,
    UnknownPoolError,
)

log = logging.getLogger("faena.brokers.redis")

SCHEMA_VERSION = 1
_PRUNE_BATCH = 1000
#: jobs one ``list`` call looks at before it returns (and is called again from there): a
#: listing over many jobs is many short calls, so Redis keeps serving everyone between them
LIST_BUDGET = 2000


class RedisBroker(RedisPipelines, RedisSchedules, RedisRegistry, RedisViews, BulkActions):
    kind = "redis"
    shared_across_processes = True
    parallel_calls = True

    def __init__(self, url: str = "redis://127.0.0.1:6379/0", *, clock: Clock = SYSTEM_CLOCK):
        self._target: RedisURL = parse_url(url)
        self._clock = clock
        self._client: Any = make_client(self._target)
        head = ["1", f"{self._target.tag}:meta", self._target.tag]
        lib = library()
        self._calls = {name: FunctionCall(lib.function(name), lib.code, head) for name in NAMES}
        self._link = Link(self._client)
        self._tag = self._target.tag

    @classmethod
    def from_url(cls, url: str, *, clock: Clock = SYSTEM_CLOCK) -> RedisBroker:
        return cls(url, clock=clock)

    def add_retry_listener(self, listener: Listener) -> None:
        self._link.retried.add(listener)

    def remove_retry_listener(self, listener: Listener) -> None:
        self._link.retried.remove(listener)

    @property
    def url(self) -> str:
        """The broker URL with its password masked."""
        return self._target.masked

    def _run(
        self,
        name: str,
        now: float,
        args: Sequence[str],
        meanwhile: Callable[[], object] | None = None,
    ) -> Any:
        return self._call(name, [num(now), *args], meanwhile)

    def _call(
        self,
        name: str,
        args: Sequence[str] | Callable[[], Sequence[str]],
        meanwhile: Callable[[], object] | None = None,
    ) -> Any:
        """Run a function with its arguments after the key prefix (the time first), or with
        a function that makes them afresh for every try (see :class:`Link`)."""
        try:
            return self._link.run(self._calls[name], args, meanwhile)
        except RedisError as exc:
            raise BrokerError(describe(self._target, exc)) from exc

    def _run_now(self, name: str, build: Callable[[float], Sequence[str]]) -> Any:
        """Like ``_run`` for calls that write lease deadlines: ``now`` and the arguments are
        taken afresh for every retry, so a call retried after an outage longer than a lease
        never writes a deadline that has already passed."""

        def args() -> list[str]:
            now = self._clock.now()
            return [num(now), *build(now)]

        return self._call(name, args)

    # setup -------------------------------------------------------------------------------
    def setup(self) -> None:
        args = [str(SCHEMA_VERSION), DEFAULT_POOL, str(DEFAULT_POOL_SLOTS)]
        try:
            stored = self._run("setup", self._clock.now(), args)
        except BrokerError as exc:
            if isinstance(exc.__cause__, ResponseError) and "WRONGTYPE" in str(exc.__cause__):
                raise SchemaError(
                    f"keys under {self._tag} in Redis at {self.url} are not faena's "
                    f"({exc.__cause__}); choose another prefix with ?prefix=NAME or another "
                    f"database number"
                ) from exc.__cause__
            raise
        try:
            version = int(stored)
        except (TypeError, ValueError):
            version = -1
        if version < 0 or version > SCHEMA_VERSION:
            raise SchemaError(
                f"the faena data under {self._tag} in Redis at {self.url} has schema version "
                f"{stored!r}, and this faena knows versions up to {SCHEMA_VERSION}; upgrade "
                f"faena, or use another prefix with ?prefix=NAME"
            )

    def exists(self) -> bool:
        return bool(call(self._target, lambda: self._client.exists(f"{self._tag}:meta")))

    def close(self) -> None:
        self._link.close()
        call(self._target, self._client.close)

    def destroy(self) -> None:
        """Delete every key of this prefix (tests, and 'start over' by hand)."""

        def unlink_all() -> None:
            batch: list[str] = []
            for key in self._client.scan_iter(match=f"{self._tag}:*", count=1000):
                batch.append(key)
                if len(batch) >= 1000:
                    self._client.unlink(*batch)
                    batch.clear()
            if batch:
                self._client.unlink(*batch)

        call(self._target, unlink_all)

    # configuration -------------------------------------------------------------------------
    def set_pools(self, pools: Mapping[str, int]) -> None:
        if pools:
            sizes = {name: str(size) for name, size in check_pools(pools).items()}
            call(self._target, lambda: self._client.hset(self._key("pools"), mapping=sizes))

    def set_parallelism(self, limit: int | None) -> None:
        meta = self._key("meta")
        if limit is None:
            call(self._target, lambda: self._client.hdel(meta, "par"))
        else:
            call(self._target, lambda: self._client.hset(meta, "par", str(int(limit))))

    def get_parallelism(self) -> int | None:
        value = call(self._target, lambda: self._client.hget(self._key("meta"), "par"))
        return None if value is None else int(value)

    # producers -------------------------------------------------------------------------------
    def enqueue(self, jobs: Sequence[NewJob]) -> list[Job]:
        if not jobs:
            return []
        checks.check_new_jobs(jobs)
        now = self._clock.now()
        created: list[Job] = []

        def build() -> None:  # the records as created, built while Redis stores them
            created.extend(lifecycle.create(new, now) for new in jobs)

        now_text = num(now)
        reply = self._call("enqueue", [now_text, *enqueue_args(jobs, now_text)], build)
        return self._enqueued(reply, created)

    def _enqueued(self, reply: Any, created: list[Job]) -> list[Job]:
        """The jobs an enqueue reply means (``created``: the records as asked)."""
        if reply == 0:  # every job created as asked
            return created
        status, found = rows(reply)
        if status == "unknown_pool":
            raise UnknownPoolError(unknown_pool(found, self._pools_known()))
        return [
            job if record == 0 else to_job(record)
            for job, record in zip(created, found, strict=True)
        ]

    def _pools_known(self) -> list[str]:
        names: list[str] = call(self._target, lambda: self._client.hkeys(self._key("pools")))
        return names

    # workers ---------------------------------------------------------------------------------
    @staticmethod
    def _claim_args(worker: str, queues: Sequence[str], limit: int, deadline: float) -> list[str]:
        return [worker, str(int(limit)), num(deadline), str(len(queues)), *queues]

    @staticmethod
    def _claim_result(claimed: Any, reaped: Any, saturated: int) -> ClaimResult:
        gone = to_jobs(reaped)
        return ClaimResult(to_jobs(claimed), [Reaped(j, j.state) for j in gone], saturated == 1)

    def claim(
        self, worker: str, queues: Sequence[str], limit: int, lease_seconds: float
    ) -> ClaimResult:
        checks.check_claim(worker, queues)
        claimed, reaped, saturated = rows(
            self._run_now(
                "claim", lambda now: self._claim_args(worker, queues, limit, now + lease_seconds)
            )
        )
        return self._claim_result(claimed, reaped, saturated)

    def heartbeat(
        self, worker: str, leases: Sequence[Lease], lease_seconds: float
    ) -> HeartbeatResult:
        checks.check_heartbeat(worker, leases)
        if not leases:
            return HeartbeatResult()
        held: list[str] = []
        for lease in leases:
            held += [lease.job_id, str(int(lease.attempt))]
        lost, cancel = self._run_now("heartbeat", lambda now: [num(now + lease_seconds), *held])
        return HeartbeatResult(frozenset(lost), frozenset(cancel))

    @staticmethod
    def _outcome_args(outcomes: Sequence[Outcome]) -> list[str]:
        checks.check_outcomes(outcomes)
        args = [str(len(outcomes))]
        for outcome in outcomes:
            args += outcome_args(outcome)
        return args

    def finish(self, outcomes: Sequence[Outcome]) -> list[bool]:
        if not outcomes:
            return []
        done = self._run("finish", self._clock.now(), self._outcome_args(outcomes))
        return [flag == 1 for flag in done]

    def finish_and_claim(
        self,
        outcomes: Sequence[Outcome],
        worker: str,
        queues: Sequence[str],
        limit: int,
        lease_seconds: float,
    ) -> tuple[list[bool], ClaimResult]:
        checks.check_claim(worker, queues)
        reports = self._outcome_args(outcomes)
        done, claimed, reaped, saturated = rows(
            self._run_now(
                "finish_and_claim",
                lambda now: [
                    *reports,
                    *self._claim_args(worker, queues, limit, now + lease_seconds),
                ],
            )
        )
        return [flag == 1 for flag in done], self._claim_result(claimed, reaped, saturated)

    def release(self, leases: Sequence[Lease]) -> list[bool]:
        if not leases:
            return []
        checks.check_leases(leases)
        args: list[str] = []
        for lease in leases:
            args += [lease.job_id, str(int(lease.attempt))]
        return [flag == 1 for flag in self._run("release", self._clock.now(), args)]

    def reap(self) -> list[Reaped]:
        jobs = to_jobs(rows(self._run("reap", self._clock.now(), [])))
        return [Reaped(job, job.state) for job in jobs]

    def waker(self, queues: Sequence[str]) -> RedisWaker:
        checks.check_queues(queues)
        with wrapped(self._target):
            return RedisWaker(
                lambda: make_client(self._target, retry=False), self._key("wake"), queues
            )

    def next_run_at(self, queues: Sequence[str]) -> float | None:
        checks.check_queues(queues)
        first = self._run("next", self._clock.now(), list(queues))
        return None if first is None else float(first)

    # operators -----------------------------------------------------------------------------
    def get(self, job_id: str) -> Job | None:
        checks.check_text("job id", job_id)
        fields = (*FIELDS, "attempts")
        record = call(self._target, lambda: self._client.hmget(self._key(f"j:{job_id}"), fields))
        if record[0] is None:
            return None
        history, damaged = attempts.from_json(record[-1])
        if damaged:  # what can be read is shown, and the job itself always is
            log.warning(
                "attempt history partly unreadable",
                extra={"event": "broker.attempts_unreadable", "job_id": job_id},
            )
        return lifecycle.with_row_attempt(to_job(record[:-1]), history)  # (lib.lua finish_one)

    def job_keys(self, job_ids: Sequence[str]) -> dict[str, int]:
        ids = list(dict.fromkeys(job_ids))
        if not ids:
            return {}
        reply = self._run("keys", self._clock.now(), ["ids", *ids])
        return {i: int(float(s)) for i, s in zip(ids, reply, strict=True) if s not in ("", b"")}

    def job_by_key(self, key: int) -> Job | None:
        if not 0 < key < 2**63:
            return None
        found = self._run("keys", self._clock.now(), ["seq", str(key)])
        if not found:
            return None
        return self.get(found.decode() if isinstance(found, bytes) else str(found))

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
        found: list[Job] = []
        skip, cursor = max(int(offset), 0), ""
        while True:  # one short script call per LIST_BUDGET jobs looked at
            args = [
                "" if state is None else JobState(state).value,
                queue or "",
                task or "",
                str(int(limit) - len(found)),
                str(skip),
                cursor,
                str(LIST_BUDGET),
            ]
            reply = json.loads(self._run("list", self._clock.now(), args))
            found.extend(to_jobs(reply["records"]))
            skip, cursor = int(reply["skip"]), str(reply["cursor"])
            if not cursor or len(found) >= limit:
                return found

    def retry(self, job_id: str) -> Job:
        checks.check_text("job id", job_id)
        reply = rows(self._run("retry", self._clock.now(), [job_id]))
        if reply[0] == "missing":
            raise JobNotFoundError(no_such_job(job_id))
        job = to_job(reply[1])
        if reply[0] == "refused":
            raise InvalidTransitionError(retry_refused(job))
        if reply[0] == "taken":
            raise InvalidTransitionError(key_taken(job, reply[2]))
        return job

    def cancel(self, job_id: str) -> Job:
        checks.check_text("job id", job_id)
        reply = rows(self._run("cancel", self._clock.now(), [job_id]))
        if reply[0] == "missing":
            raise JobNotFoundError(no_such_job(job_id))
        job = to_job(reply[1])
        if reply[0] == "refused":
            raise InvalidTransitionError(cancel_refused(job))
        return job

    def queue_stats(self) -> list[QueueStat]:
        now = self._clock.now()
        _pools, rows = self._run("stats", now, [])
        stats = [
            QueueStat(
                queue,
                int(waiting),
                int(scheduled),
                int(running),
                max(now - float(first), 0.0) if first else 0.0,
            )
            for queue, waiting, scheduled, running, first in rows
        ]
        return sorted(stats, key=lambda s: s.queue)

    def pool_stats(self) -> list[PoolStat]:
        pools, _rows = self._run("stats", self._clock.now(), [])
        return sorted((PoolStat(n, int(s), int(u)) for n, s, u in pools), key=lambda p: p.pool)

    def count_by_state(self) -> dict[tuple[str, JobState], int]:
        flat = call(self._target, lambda: self._client.hgetall(self._key("counts")))
        counts: dict[tuple[str, JobState], int] = {}
        for field, value in flat.items():
            queue, _, state = field.rpartition("|")
            if int(value) > 0:
                counts[(queue, JobState(state))] = int(value)
        return counts

    def prune(self, older_than: float, limit: int | None = None) -> int:
        cap = check_prune_limit(limit)
        total = 0
        while cap is None or total < cap:
            batch = _PRUNE_BATCH if cap is None else min(_PRUNE_BATCH, cap - total)
            deleted = int(self._run("prune", self._clock.now(), [num(older_than), str(batch)]))
            total += deleted
            if deleted < batch:
                break
        return total
