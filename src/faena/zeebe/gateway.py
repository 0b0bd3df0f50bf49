"""The Zeebe gateway's job-worker calls on any faena broker, through the broker protocol only.

Each call runs in a thread of the gRPC server (:mod:`faena.zeebe.serving`). Writes are fenced
by the job's attempt: a job that moved between the read and the write makes the write report
``False``, and the call is answered from the fresh record. Zeebe names a job by its key, not
its attempt, so (as in Zeebe) whoever holds the key of an activated job may complete it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

import grpc

from faena.brokers.protocol import Broker
from faena.core import payload
from faena.core.clock import SYSTEM_CLOCK, Clock
from faena.core.job import ErrorInfo, Job, Lease, Outcome
from faena.core.states import JobState
from faena.errors import BrokerError, FaenaError, InvalidTransitionError
from faena.version import __version__
from faena.zeebe import calls, jobs
from faena.zeebe.calls import CallError
from faena.zeebe.proto import GatewayServicer, pb
from faena.zeebe.wakeups import Wakeups

_log = logging.getLogger("faena.zeebe")
#: a waiting long poll looks again at least this often (a lease that expired unsignalled,
#: a client that went away)
SAFETY_SECONDS = 1.0
#: jobs a stream claims at a time
STREAM_BATCH = 8
#: the Zeebe version ``Topology`` reports (the protocol the calls follow)
GATEWAY_VERSION = "8.5.0"
ERROR_MESSAGE_LIMIT = 5000


def _guarded(method: Callable[..., Any]) -> Callable[..., Any]:
    """Answer a refusal with its status; a broker outage with ``UNAVAILABLE``."""

    def call(self: ZeebeGateway, request: Any, context: grpc.ServicerContext) -> Any:
        try:
            return method(self, request, context)
        except CallError as exc:
            self._refused(method.__name__, exc.code, exc.message)
            context.abort(exc.code, exc.message)
        except BrokerError as exc:
            self._refused(method.__name__, grpc.StatusCode.UNAVAILABLE, str(exc))
            context.abort(grpc.StatusCode.UNAVAILABLE, f"faena's broker is unavailable: {exc}")
        except FaenaError as exc:  # a value the broker refused
            self._refused(method.__name__, grpc.StatusCode.INVALID_ARGUMENT, str(exc))
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))

    call.__name__ = method.__name__
    return call


def _streamed(method: Callable[..., Iterator[Any]]) -> Callable[..., Iterator[Any]]:
    def call(self: ZeebeGateway, request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
        try:
            yield from method(self, request, context)
        except CallError as exc:
            self._refused(method.__name__, exc.code, exc.message)
            context.abort(exc.code, exc.message)
        except BrokerError as exc:
            self._refused(method.__name__, grpc.StatusCode.UNAVAILABLE, str(exc))
            context.abort(grpc.StatusCode.UNAVAILABLE, f"faena's broker is unavailable: {exc}")
        except FaenaError as exc:  # a value the broker refused
            self._refused(method.__name__, grpc.StatusCode.INVALID_ARGUMENT, str(exc))
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))

    call.__name__ = method.__name__
    return call


class ZeebeGateway(GatewayServicer):  # type: ignore[misc]
    def __init__(
        self,
        broker: Broker,
        *,
        host: str = "127.0.0.1",
        port: int = 26500,
        clock: Clock = SYSTEM_CLOCK,
        max_payload_bytes: int = payload.DEFAULT_MAX_PAYLOAD_BYTES,
    ) -> None:
        self.broker = broker
        self.host = host
        self.port = port
        self.clock = clock
        self.max_payload_bytes = max_payload_bytes
        self.stopping = False
        self.wakeups = Wakeups(lambda: broker)

    def close(self) -> None:
        """Stop waiting calls and close the shared wakers."""
        self.stopping = True
        self.wakeups.close()

    def _refused(self, call: str, code: grpc.StatusCode, message: str) -> None:
        _log.info(
            f"zeebe {call} refused: {message}",
            extra={"event": "zeebe.refused", "call": call, "status": code.name},
        )

    # topology ----------------------------------------------------------------------------
    @_guarded
    def Topology(self, request: Any, context: grpc.ServicerContext) -> Any:
        partition = pb.Partition(
            partitionId=1, role=pb.Partition.LEADER, health=pb.Partition.HEALTHY
        )
        broker = pb.BrokerInfo(
            nodeId=0, host=self.host, port=self.port, partitions=[partition], version=__version__
        )
        return pb.TopologyResponse(
            brokers=[broker],
            clusterSize=1,
            partitionsCount=1,
            replicationFactor=1,
            gatewayVersion=GATEWAY_VERSION,
        )

    # activation --------------------------------------------------------------------------
    def _activate(
        self,
        context: grpc.ServicerContext,
        call: str,
        queue: str,
        worker: str,
        lease_ms: int,
        n: int,
        names: list[str],
    ) -> list[Any]:
        """Claim and describe up to ``n`` jobs; what a client that went away meanwhile would
        never get is given back at once (a release: no attempt is spent)."""
        if not context.is_active():
            return []
        claim = self.broker.claim(worker, [queue], n, lease_ms / 1000)
        if not claim.jobs:
            return []
        try:
            keys = self.broker.job_keys([j.id for j in claim.jobs])
            out = [pb.ActivatedJob(**jobs.activated(j, keys[j.id], names)) for j in claim.jobs]
        except BaseException:
            self.broker.release([Lease(j.id, j.attempt) for j in claim.jobs])
            raise
        if not context.is_active():
            self.broker.release([Lease(j.id, j.attempt) for j in claim.jobs])
            _log.info(
                f"zeebe gave back {len(out)} job(s) of {queue}: {worker} went away",
                extra={"event": "zeebe.released", "queue": queue, "worker": worker},
            )
            return []
        _log.info(
            f"zeebe activated {len(out)} job(s) of {queue} for {worker} ({call})",
            extra={
                "event": "zeebe.activated",
                "call": call,
                "queue": queue,
                "worker": worker,
                "jobs": len(out),
            },
        )
        return out

    def _wait(self, queue: str, seen: int, until: float, context: grpc.ServicerContext) -> None:
        """Wait until work may be there for ``queue`` (a wake-up after ``seen``, a delayed
        job coming due, the safety net) or ``until`` (monotonic) passes."""
        left = until - time.monotonic()
        if left <= 0 or self.stopping or not context.is_active():
            return
        wait = min(left, SAFETY_SECONDS)
        due = self.broker.next_run_at([queue])
        if due is not None:
            wait = min(wait, max(due - self.clock.now(), 0.0))
        self.wakeups.wait(queue, seen, wait)

    @_streamed
    def ActivateJobs(self, request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
        queue = calls.text("type", request.type, required=True)
        worker = calls.text("worker", request.worker) or "default"
        lease_ms = calls.between("timeout", request.timeout, 1, calls.MAX_MS)
        n = calls.between("maxJobsToActivate", request.maxJobsToActivate, 1, calls.MAX_JOBS)
        names = [calls.text("fetchVariable", v) for v in request.fetchVariable]
        poll = calls.poll_ms(request.requestTimeout)
        until = time.monotonic() + (poll or 0) / 1000
        while True:
            seen = self.wakeups.generation(queue)
            found = self._activate(context, "ActivateJobs", queue, worker, lease_ms, n, names)
            if found:
                yield pb.ActivateJobsResponse(jobs=found)
                return
            if (
                poll is None
                or time.monotonic() >= until
                or self.stopping
                or not context.is_active()
            ):
                yield pb.ActivateJobsResponse(jobs=[])
                return
            self._wait(queue, seen, until, context)

    @_streamed
    def StreamActivatedJobs(self, request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
        queue = calls.text("type", request.type, required=True)
        worker = calls.text("worker", request.worker) or "default"
        lease_ms = calls.between("timeout", request.timeout, 1, calls.MAX_MS)
        names = [calls.text("fetchVariable", v) for v in request.fetchVariable]
        while not self.stopping and context.is_active():
            seen = self.wakeups.generation(queue)
            yield from self._activate(
                context, "StreamActivatedJobs", queue, worker, lease_ms, STREAM_BATCH, names
            )
            self._wait(queue, seen, time.monotonic() + SAFETY_SECONDS, context)

    # job actions -------------------------------------------------------------------------
    def _job(self, key: int, verb: str) -> Job:
        job = self.broker.job_by_key(calls.job_key(key))
        if job is None:
            raise CallError(
                grpc.StatusCode.NOT_FOUND,
                f"Expected to {verb} job with key '{key}', but no such job was found",
            )
        return job

    def _finish(self, key: int, verb: str, make: Callable[[Job], Outcome]) -> Job:
        """The outcome ``make`` builds, written fenced by the attempt; checked again once if
        the job moved in between."""
        for _ in range(2):
            job = self._job(key, verb)
            problem = jobs.state_problem(job, key, verb, self.clock.now())
            if problem is not None:
                raise CallError(getattr(grpc.StatusCode, problem[0]), problem[1])
            if self.broker.finish([make(job)]) == [True]:
                return job
        raise CallError(
            grpc.StatusCode.FAILED_PRECONDITION,
            f"Expected to {verb} job with key '{key}', but it kept changing; try again",
        )

    def _logged(self, event: str, job: Job, key: int, **fields: Any) -> None:
        _log.info(
            f"zeebe {event.split('.')[1]} job {key} ({job.id})",
            extra={"event": event, "job_id": job.id, "job_key": key, "queue": job.queue, **fields},
        )

    @_guarded
    def CompleteJob(self, request: Any, context: grpc.ServicerContext) -> Any:
        result = calls.variables("variables", request.variables, self.max_payload_bytes)

        def make(job: Job) -> Outcome:
            return Outcome(job.id, job.attempt, JobState.SUCCEEDED, result_json=result)

        job = self._finish(request.jobKey, "complete", make)
        self._logged("zeebe.completed", job, request.jobKey)
        return pb.CompleteJobResponse()

    @_guarded
    def FailJob(self, request: Any, context: grpc.ServicerContext) -> Any:
        retries = calls.between("retries", request.retries, -calls.MAX_RETRIES, calls.MAX_RETRIES)
        backoff = calls.between("retryBackOff", request.retryBackOff, 0, calls.MAX_MS)
        message = calls.text("errorMessage", request.errorMessage[:ERROR_MESSAGE_LIMIT])
        calls.variables("variables", request.variables, self.max_payload_bytes)
        error = ErrorInfo(jobs.FAILURE, message)

        def make(job: Job) -> Outcome:
            if retries <= 0:
                return Outcome(
                    job.id, job.attempt, JobState.DEAD, error=error, max_attempts=job.tries
                )
            return Outcome(
                job.id,
                job.attempt,
                JobState.FAILED,
                error=error,
                retry_at=self.clock.now() + backoff / 1000,
                max_attempts=job.tries + retries,
            )

        job = self._finish(request.jobKey, "fail", make)
        self._logged("zeebe.failed", job, request.jobKey, retries=max(retries, 0))
        return pb.FailJobResponse()

    @_guarded
    def ThrowError(self, request: Any, context: grpc.ServicerContext) -> Any:
        code = calls.text("errorCode", request.errorCode, required=True)
        message = calls.text("errorMessage", request.errorMessage[:ERROR_MESSAGE_LIMIT])
        variables = calls.variables("variables", request.variables, self.max_payload_bytes)
        result = payload.encode(
            "error",
            {"errorCode": code, "errorMessage": message, "variables": payload.decode(variables)},
            self.max_payload_bytes,
        )
        text = code if not message else f"{code}: {message}"
        error = ErrorInfo(jobs.BPMN_ERROR, text[:ERROR_MESSAGE_LIMIT])

        def make(job: Job) -> Outcome:
            return Outcome(job.id, job.attempt, JobState.DEAD, result_json=result, error=error)

        job = self._finish(request.jobKey, "throw an error for", make)
        self._logged("zeebe.error_thrown", job, request.jobKey, error_code=code)
        return pb.ThrowErrorResponse()

    @_guarded
    def UpdateJobRetries(self, request: Any, context: grpc.ServicerContext) -> Any:
        calls.between("retries", request.retries, 1, calls.MAX_RETRIES)
        key = request.jobKey
        job = self._job(key, "update retries of")
        if job.state is JobState.DEAD:
            problem = jobs.state_problem(job, key, "update retries of", self.clock.now())
            if problem is not None and problem[0] == "NOT_FOUND":  # ended by ThrowError
                raise CallError(grpc.StatusCode.NOT_FOUND, problem[1])
            try:
                self.broker.retry(job.id)
            except InvalidTransitionError as exc:
                raise CallError(grpc.StatusCode.FAILED_PRECONDITION, str(exc)) from None
        elif job.state in (JobState.SUCCEEDED, JobState.CANCELLED):
            problem = jobs.state_problem(job, key, "update retries of", self.clock.now())
            assert problem is not None
            raise CallError(grpc.StatusCode.NOT_FOUND, problem[1])
        # a live job keeps its budget: faena sets it only when an attempt ends (docs/zeebe.md)
        return pb.UpdateJobRetriesResponse()

    @_guarded
    def UpdateJobTimeout(self, request: Any, context: grpc.ServicerContext) -> Any:
        lease_ms = calls.between("timeout", request.timeout, 1, calls.MAX_MS)
        key = request.jobKey
        job = self._job(key, "update the timeout of")
        problem = jobs.state_problem(job, key, "update the timeout of", self.clock.now())
        if problem is not None:
            raise CallError(getattr(grpc.StatusCode, problem[0]), problem[1])
        beat = self.broker.heartbeat(
            job.worker or "", [Lease(job.id, job.attempt)], lease_ms / 1000
        )
        if job.id in beat.lost:
            raise CallError(
                grpc.StatusCode.NOT_FOUND,
                f"Expected to update the timeout of job with key '{key}', but it is no longer "
                f"activated",
            )
        return pb.UpdateJobTimeoutResponse()
