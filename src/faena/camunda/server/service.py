"""The external-task operations on any faena broker, through the broker protocol only.

Blocking calls (the HTTP layer runs them in threads). Every write is fenced by the job's
attempt, so a check followed by a write can never clobber what another worker wrote in
between: the write then reports ``False`` and the answer is recomputed from the fresh record.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from faena.brokers.protocol import Broker
from faena.camunda.errors import ERROR_MESSAGE_LIMIT, RestError, bad_request, not_found
from faena.camunda.server import query as q
from faena.camunda.server import requests as rq
from faena.camunda.server import tasks
from faena.core import payload
from faena.core.clock import SYSTEM_CLOCK, Clock
from faena.core.job import ErrorInfo, Job, Lease, Outcome
from faena.core.states import PENDING, JobState
from faena.errors import InvalidTransitionError, PayloadError

#: extra jobs claimed (and released at once) to find matches for a filtered topic
FILTER_WINDOW = 32
#: growing claim sizes tried to reach one given job for ``lock``
LOCK_WINDOWS = (8, 64, 512)
#: jobs read per broker call while a query walks every task (each page starts where the
#: last ended by offset, which a broker may have to walk again: few large pages)
LIST_PAGE = 10_000
VIEW_STATES = (*sorted(PENDING), JobState.RUNNING, JobState.DEAD)


class ExternalTaskService:
    def __init__(
        self,
        broker: Broker,
        *,
        clock: Clock = SYSTEM_CLOCK,
        max_payload_bytes: int = payload.DEFAULT_MAX_PAYLOAD_BYTES,
    ) -> None:
        self.broker = broker
        self.clock = clock
        self.max_payload_bytes = max_payload_bytes

    # lookups ---------------------------------------------------------------------------
    def task(self, task_id: str) -> Job:
        if "\x00" in task_id:  # no job has one, and PostgreSQL cannot even be asked
            raise not_found(task_id)
        job = self.broker.get(task_id)
        if job is None or not tasks.is_external_task(job):
            raise not_found(task_id)
        return job

    def get(self, task_id: str) -> dict[str, Any]:
        return tasks.dto(self.task(task_id), self.clock.now())

    def error_details(self, task_id: str) -> str | None:
        return tasks.error_details(self.task(task_id))

    def _jobs(self, state: JobState, topic: str | None) -> Iterator[Job]:
        """The tasks among the jobs of ``state`` (and ``topic``), page by page."""
        offset = 0
        while True:
            page = self.broker.list_jobs(state=state, queue=topic, limit=LIST_PAGE, offset=offset)
            yield from (j for j in page if tasks.is_external_task(j))
            if len(page) < LIST_PAGE:
                break
            offset += LIST_PAGE

    def _all(self, topic: str | None) -> Iterator[Job]:
        for state in VIEW_STATES:
            yield from self._jobs(state, topic)

    def query(self, criteria: q.TaskQuery) -> list[dict[str, Any]]:
        now = self.clock.now()
        topic = criteria.equals.get("topicName")
        found = []
        for job in self._all(topic):
            dto = tasks.dto(job, now)
            if criteria.matches(job, dto, now):
                found.append(dto)
        found.sort(key=lambda d: (d["createTime"] or "", d["id"]))
        return criteria.order(found)

    def count(self, criteria: q.TaskQuery) -> int:
        if not criteria.by_topic_alone():
            return len(self.query(criteria))
        topic = criteria.equals.get("topicName")
        # by topic alone (or nothing): the broker's counts, which read an index, plus the
        # dead jobs that are still tasks (not ended by a BPMN error); no job is decoded
        # but those dead ones
        live = sum(
            n
            for (queue, state), n in self.broker.count_by_state().items()
            if (topic is None or queue == topic) and (state in PENDING or state is JobState.RUNNING)
        )
        return live + sum(1 for _ in self._jobs(JobState.DEAD, topic))

    # fetchAndLock ------------------------------------------------------------------------
    def fetch(self, request: rq.FetchRequest) -> list[tuple[Job, dict[str, Any]]]:
        """Lock up to ``maxTasks`` tasks now (no waiting): each job with its locked DTO. If
        anything fails on the way, what was locked is given back: no claim goes untold."""
        got: list[tuple[Job, rq.TopicRequest]] = []
        try:
            self._claim_all(request, got)
            now = self.clock.now()
            return [(job, tasks.locked_dto(job, now, topic.variables)) for job, topic in got]
        except BaseException:
            self.release([job for job, _ in got])
            raise

    def _claim_all(self, request: rq.FetchRequest, got: list[tuple[Job, rq.TopicRequest]]) -> None:
        wanted = request.max_tasks
        by_lock: dict[int, list[rq.TopicRequest]] = {}
        for topic in (t for t in request.topics if not t.filtered):
            by_lock.setdefault(topic.lock_ms, []).append(topic)
        for lock_ms, topics in by_lock.items():
            if len(got) >= wanted:
                break
            names = {t.name: t for t in topics}
            claim = self.broker.claim(
                request.worker, sorted(names), wanted - len(got), lock_ms / 1000
            )
            got.extend((job, names[job.queue]) for job in claim.jobs)
        for topic in (t for t in request.topics if t.filtered):
            if len(got) >= wanted:
                break
            got.extend(
                (job, topic) for job in self._claim_filtered(request, topic, wanted - len(got))
            )

    def release(self, jobs: list[Job]) -> None:
        """Give back tasks locked for a client that went away before getting them."""
        if jobs:
            self.broker.release([Lease(j.id, j.attempt) for j in jobs])

    def _claim_filtered(
        self, request: rq.FetchRequest, topic: rq.TopicRequest, limit: int
    ) -> list[Job]:
        claim = self.broker.claim(
            request.worker, [topic.name], limit + FILTER_WINDOW, topic.lock_ms / 1000
        )
        keep = [j for j in claim.jobs if _topic_matches(j, topic)][:limit]
        kept = {j.id for j in keep}
        others = [Lease(j.id, j.attempt) for j in claim.jobs if j.id not in kept]
        if others:
            self.broker.release(others)
        return keep

    # task actions ------------------------------------------------------------------------
    def _owned(self, task_id: str, worker: str, verb: str) -> Job:
        job = self.task(task_id)
        if job.state is JobState.DEAD and job.worker == worker:
            raise RestError(
                400,
                f"External Task {task_id} has no retries left (an incident); faena cannot "
                f"{_VERBS[verb]} it: give it retries with PUT /external-task/{task_id}/retries "
                f"first.",
            )
        owner = tasks.worker_id(job)
        if job.state is not JobState.RUNNING or owner != worker:
            raise RestError(400, _owner_message(task_id, worker, owner, verb))
        return job

    def _finish(self, task_id: str, worker: str, verb: str, make: Any) -> None:
        """Check ownership, write the outcome fenced by attempt; retry the check once if the
        job moved in between (the fence refused the write)."""
        for _ in range(2):
            job = self._owned(task_id, worker, verb)
            outcome: Outcome = make(job)
            if self.broker.finish([outcome]) == [True]:
                return
        raise RestError(
            400, _owner_message(task_id, worker, tasks.worker_id(self.task(task_id)), verb)
        )

    def complete(self, task_id: str, body: Any) -> None:
        done = rq.completion(body)
        result = self._encode_result(done.variables)

        def make(job: Job) -> Outcome:
            return Outcome(job.id, job.attempt, JobState.SUCCEEDED, result_json=result)

        self._finish(task_id, done.worker, "completed", make)

    def failure(self, task_id: str, body: Any) -> None:
        fail = rq.failure(body)
        message = (fail.message or "")[:ERROR_MESSAGE_LIMIT]
        error = ErrorInfo(tasks.FAILURE, message, fail.details or "")

        def make(job: Job) -> Outcome:
            if fail.retries == 0:
                return Outcome(
                    job.id, job.attempt, JobState.DEAD, error=error, max_attempts=job.tries
                )
            return Outcome(
                job.id,
                job.attempt,
                JobState.FAILED,
                error=error,
                retry_at=self.clock.now() + fail.retry_timeout_ms / 1000,
                max_attempts=job.tries + fail.retries,
            )

        self._finish(task_id, fail.worker, "reported", make)

    def bpmn_error(self, task_id: str, body: Any) -> None:
        err = rq.bpmn_error(body)
        result = self._encode_result(
            {"errorCode": err.code, "errorMessage": err.message, "variables": err.variables}
        )
        text = err.code if not err.message else f"{err.code}: {err.message}"
        error = ErrorInfo(tasks.BPMN_ERROR, text[:ERROR_MESSAGE_LIMIT])

        def make(job: Job) -> Outcome:
            return Outcome(job.id, job.attempt, JobState.DEAD, result_json=result, error=error)

        self._finish(task_id, err.worker, "bpmn", make)

    def _encode_result(self, value: Any) -> str:
        try:
            return payload.encode("output variables", value, self.max_payload_bytes)
        except PayloadError as exc:
            raise bad_request(str(exc)) from None

    def extend_lock(self, task_id: str, body: Any) -> None:
        worker, ms = rq.extend_lock(body)
        job = self.task(task_id)
        if job.state is not JobState.RUNNING or tasks.worker_id(job) != worker:
            raise RestError(
                400,
                f"The lock of the External Task {task_id} cannot be extended by worker '{worker}'",
            )
        if job.lease_expires_at is not None and job.lease_expires_at <= self.clock.now():
            raise RestError(400, "Cannot extend a lock that expired")
        beat = self.broker.heartbeat(worker, [Lease(job.id, job.attempt)], ms / 1000)
        if job.id in beat.lost:
            raise RestError(
                400,
                f"The lock of the External Task {task_id} cannot be extended by worker '{worker}'",
            )

    def unlock(self, task_id: str) -> None:
        for _ in range(3):
            job = self.task(task_id)
            if job.state is not JobState.RUNNING:
                return
            if self.broker.release([Lease(job.id, job.attempt)]) == [True]:
                return
        raise RestError(
            500,
            f"External Task {task_id} kept changing while unlocking; try again",
            "ProcessEngineException",
        )

    def lock(self, task_id: str, body: Any) -> None:
        worker, ms = rq.lock(body)
        job = self.task(task_id)
        now = self.clock.now()
        if job.state is JobState.RUNNING:
            expired = job.lease_expires_at is not None and job.lease_expires_at <= now
            if job.worker == worker and not expired:
                self.broker.heartbeat(worker, [Lease(job.id, job.attempt)], ms / 1000)
                return
            if not expired:
                raise RestError(
                    400,
                    f"External Task {task_id} cannot be locked by worker "
                    f"'{worker}'. It is locked by worker '{job.worker}'.",
                )
            self.broker.reap()
            job = self.task(task_id)
        if job.state is JobState.DEAD:
            raise RestError(
                400,
                f"External Task {task_id} has no retries left; it cannot be "
                "locked until its retries are set",
            )
        if self._lock_pending(job, worker, ms):
            return
        raise RestError(
            400,
            f"External Task {task_id} cannot be locked now: it is not runnable yet (waiting "
            f"for its retryTimeout), or its pool or the parallelism cap is full",
        )

    def _lock_pending(self, job: Job, worker: str, ms: int) -> bool:
        """Claim one given job: claim growing batches of its queue, keep it, release the rest."""
        for window in LOCK_WINDOWS:
            claim = self.broker.claim(worker, [job.queue], window, ms / 1000)
            others = [Lease(j.id, j.attempt) for j in claim.jobs if j.id != job.id]
            if others:
                self.broker.release(others)
            if any(j.id == job.id for j in claim.jobs):
                return True
            if len(claim.jobs) < window:
                return False
        return False

    def set_retries(self, task_id: str, retries: int) -> None:
        job = self.task(task_id)
        if job.state is JobState.DEAD and retries > 0:
            with contextlib.suppress(InvalidTransitionError):  # revived meanwhile
                self.broker.retry(job.id)
        # a live job keeps its budget: faena changes it only when an attempt ends

    def set_retries_batch(self, body: Any) -> None:
        if not isinstance(body, dict):
            raise bad_request("the request body must be a JSON object")
        retries = rq.retries_value(body)
        ids = body.get("externalTaskIds") or []
        if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
            raise bad_request("externalTaskIds must be an array of strings")
        ids = list(ids)
        pids = body.get("processInstanceIds") or []
        if isinstance(pids, list):
            ids.extend(str(p) for p in pids)  # process instance id = job id here
        crit = body.get("externalTaskQuery")
        if isinstance(crit, dict):
            ids.extend(d["id"] for d in self.query(q.parse(crit, paging=False)))
        if not ids:
            raise bad_request(
                "externalTaskIds, processInstanceIds or externalTaskQuery must "
                "select at least one task"
            )
        for task_id in dict.fromkeys(ids):
            try:
                self.set_retries(task_id, retries)
            except RestError as exc:
                if exc.status != 404:
                    raise


_VERBS = {"completed": "complete", "reported": "fail", "bpmn": "end with a BPMN error"}


def _owner_message(task_id: str, worker: str, owner: str | None, verb: str) -> str:
    shown = "null" if owner is None else owner
    if verb == "reported":
        head = f"Failure of External Task {task_id} cannot be reported by worker '{worker}'."
    elif verb == "bpmn":
        head = f"Bpmn error of External Task {task_id} cannot be reported by worker '{worker}'."
    else:
        head = f"External Task {task_id} cannot be completed by worker '{worker}'."
    return f"{head} It is locked by worker '{shown}'."


def _topic_matches(job: Job, topic: rq.TopicRequest) -> bool:
    if topic.business_key is not None and job.idempotency_key != topic.business_key:
        return False
    if topic.definition_keys is not None and job.task not in topic.definition_keys:
        return False
    if topic.tenant_ids is not None or topic.version_tag is not None:
        return False  # faena jobs have no tenant and no version tag
    if topic.process_variables:
        kwargs = job.kwargs
        return all(
            name in kwargs and kwargs[name] == value
            for name, value in topic.process_variables.items()
        )
    return True
