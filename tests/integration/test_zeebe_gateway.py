"""faena's Zeebe gateway over real gRPC (in this process, on SQLite): each call's answers and
refusals with the status the clients expect, auth, backpressure, and a bounded fuzz."""

from __future__ import annotations

import contextlib
import json
import random
import socket
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from pyzeebe.proto.gateway_pb2_grpc import GatewayStub
from tests.integration.test_camunda_support import wait_for

from faena.brokers.protocol import Broker
from faena.brokers.url import open_broker
from faena.core.job import NewJob
from faena.core.states import JobState
from faena.web.guard import Access
from faena.zeebe.proto import pb
from faena.zeebe.serving import ZeebeServer

TYPE = "gw-orders"
BEARER = [("authorization", "Bearer s3cret")]


class Gateway:
    def __init__(self, broker: Broker, server: ZeebeServer) -> None:
        self.broker = broker
        self.server = server
        self.channel = grpc.insecure_channel(f"127.0.0.1:{server.port}")
        self.stub = GatewayStub(self.channel)

    def enqueue(self, **kwargs: Any) -> str:
        body = json.dumps(kwargs)
        [job] = self.broker.enqueue([NewJob(task="t", queue=TYPE, kwargs_json=body)])
        return job.id

    def activate(self, n: int = 10, timeout: int = 30_000, **extra: Any) -> list[Any]:
        request = pb.ActivateJobsRequest(
            type=TYPE, worker="w", timeout=timeout, maxJobsToActivate=n, requestTimeout=-1
        )
        for name, value in extra.items():
            if name == "fetchVariable":
                request.fetchVariable.extend(value)
            else:
                setattr(request, name, value)
        return [job for r in self.stub.ActivateJobs(request, timeout=30) for job in r.jobs]


@contextlib.contextmanager
def _serve(tmp_path: Path, **options: Any) -> Iterator[Gateway]:
    broker = open_broker(f"sqlite:///{tmp_path / 'faena.db'}")
    broker.setup()
    server = ZeebeServer(broker, host="127.0.0.1", port=0, **options)
    server.start()
    gw = Gateway(broker, server)
    try:
        yield gw
    finally:
        gw.channel.close()
        server.stop(0)
        broker.close()


@pytest.fixture
def gw(tmp_path: Path) -> Iterator[Gateway]:
    with _serve(tmp_path) as gateway:
        yield gateway


def _refused(call: Any, *args: Any, **kwargs: Any) -> grpc.RpcError:
    """The error of a unary call (a streaming one is read to its end)."""
    with pytest.raises(grpc.RpcError) as info:
        result = call(*args, timeout=30, **kwargs)
        if hasattr(result, "__next__"):
            list(result)
    error: grpc.RpcError = info.value
    return error


def _code(err: grpc.RpcError) -> grpc.StatusCode:
    return err.code()  # type: ignore[attr-defined, no-any-return]


def _details(err: grpc.RpcError) -> str:
    return str(err.details())  # type: ignore[attr-defined]


def test_topology_names_one_broker_with_one_partition(gw: Gateway) -> None:
    topo = gw.stub.Topology(pb.TopologyRequest(), timeout=10)
    assert topo.clusterSize == 1 and topo.partitionsCount == 1
    assert [b.port for b in topo.brokers] == [gw.server.port]
    assert topo.brokers[0].partitions[0].role == pb.Partition.LEADER


def test_activate_gives_the_key_variables_retries_and_deadline(gw: Gateway) -> None:
    job_id = gw.enqueue(orderId="1234", amount=20, note="x")
    [job] = gw.activate(fetchVariable=["orderId", "amount"])
    assert job.key == gw.broker.job_keys([job_id])[job_id]
    assert json.loads(job.variables) == {"orderId": "1234", "amount": 20}
    assert job.type == TYPE and job.worker == "w" and job.retries == 4
    stored = gw.broker.get(job_id)
    assert stored is not None and stored.state is JobState.RUNNING
    assert job.deadline == int((stored.lease_expires_at or 0) * 1000)
    assert gw.activate() == []  # activated already: no one else gets it


def test_complete_then_complete_again_is_not_found(gw: Gateway) -> None:
    job_id = gw.enqueue(n=1)
    [job] = gw.activate()
    gw.stub.CompleteJob(pb.CompleteJobRequest(jobKey=job.key, variables='{"ok": true}'))
    stored = gw.broker.get(job_id)
    assert stored is not None and stored.state is JobState.SUCCEEDED
    assert stored.result == {"ok": True}
    err = _refused(gw.stub.CompleteJob, pb.CompleteJobRequest(jobKey=job.key))
    assert _code(err) is grpc.StatusCode.NOT_FOUND and str(job.key) in _details(err)
    err = _refused(gw.stub.CompleteJob, pb.CompleteJobRequest(jobKey=job.key + 10_000))
    assert _code(err) is grpc.StatusCode.NOT_FOUND


@pytest.mark.parametrize(
    ("field", "request_fields"),
    [
        ("type", {"type": "", "timeout": 1000, "maxJobsToActivate": 1}),
        ("maxJobsToActivate", {"type": TYPE, "timeout": 1000, "maxJobsToActivate": 0}),
        ("timeout", {"type": TYPE, "timeout": 0, "maxJobsToActivate": 1}),
        ("type", {"type": "a\x00b", "timeout": 1000, "maxJobsToActivate": 1}),
    ],
)
def test_activate_refuses_bad_fields_naming_them(
    gw: Gateway, field: str, request_fields: dict[str, Any]
) -> None:
    request = pb.ActivateJobsRequest(**request_fields)
    err = _refused(gw.stub.ActivateJobs, request)
    assert _code(err) is grpc.StatusCode.INVALID_ARGUMENT
    assert f"'{field}'" in _details(err)


def test_job_calls_refuse_bad_fields_naming_them(gw: Gateway) -> None:
    gw.enqueue(n=1)
    [job] = gw.activate()
    cases = [
        (gw.stub.CompleteJob, pb.CompleteJobRequest(jobKey=0), "jobKey"),
        (gw.stub.CompleteJob, pb.CompleteJobRequest(jobKey=job.key, variables="[1]"), "variables"),
        (gw.stub.CompleteJob, pb.CompleteJobRequest(jobKey=job.key, variables="{no"), "variables"),
        (gw.stub.FailJob, pb.FailJobRequest(jobKey=job.key, retryBackOff=-1), "retryBackOff"),
        (gw.stub.ThrowError, pb.ThrowErrorRequest(jobKey=job.key, errorCode=""), "errorCode"),
        (gw.stub.UpdateJobRetries, pb.UpdateJobRetriesRequest(jobKey=job.key), "retries"),
        (gw.stub.UpdateJobTimeout, pb.UpdateJobTimeoutRequest(jobKey=job.key), "timeout"),
    ]
    for call, request, field in cases:
        err = _refused(call, request)
        assert _code(err) is grpc.StatusCode.INVALID_ARGUMENT, (field, _details(err))
        assert f"'{field}'" in _details(err)
    stored = gw.broker.get(job.key and gw.broker.job_by_key(job.key).id)  # type: ignore[union-attr]
    assert stored is not None and stored.state is JobState.RUNNING  # nothing was written


def test_fail_with_retries_and_backoff_then_without_retries(gw: Gateway) -> None:
    job_id = gw.enqueue(n=1)
    [job] = gw.activate()
    gw.stub.FailJob(
        pb.FailJobRequest(jobKey=job.key, retries=2, errorMessage="db down", retryBackOff=3_600_000)
    )
    stored = gw.broker.get(job_id)
    assert stored is not None and stored.state is JobState.FAILED
    assert stored.error is not None and stored.error.message == "db down"
    assert stored.max_attempts == 3 and stored.run_at > (stored.finished_at or 0) + 3000
    assert gw.activate() == []  # waiting for its back-off
    err = _refused(gw.stub.CompleteJob, pb.CompleteJobRequest(jobKey=job.key))
    assert _code(err) is grpc.StatusCode.FAILED_PRECONDITION and "FAILED" in _details(err)

    other = gw.enqueue(n=2)
    [second] = gw.activate()
    gw.stub.FailJob(pb.FailJobRequest(jobKey=second.key, retries=0, errorMessage="fatal"))
    dead = gw.broker.get(other)
    assert dead is not None and dead.state is JobState.DEAD
    # UpdateJobRetries on the incident: faena's retry, the job is activatable again
    gw.stub.UpdateJobRetries(pb.UpdateJobRetriesRequest(jobKey=second.key, retries=3))
    [again] = gw.activate()
    assert again.key == second.key and again.retries >= 1


def test_throw_error_ends_the_job_with_its_code(gw: Gateway) -> None:
    job_id = gw.enqueue(n=1)
    [job] = gw.activate()
    gw.stub.ThrowError(
        pb.ThrowErrorRequest(
            jobKey=job.key, errorCode="NEG", errorMessage="no", variables='{"a":1}'
        )
    )
    stored = gw.broker.get(job_id)
    assert stored is not None and stored.state is JobState.DEAD
    assert stored.result == {"errorCode": "NEG", "errorMessage": "no", "variables": {"a": 1}}
    err = _refused(gw.stub.UpdateJobRetries, pb.UpdateJobRetriesRequest(jobKey=job.key, retries=1))
    assert _code(err) is grpc.StatusCode.NOT_FOUND


def test_update_timeout_moves_the_lease(gw: Gateway) -> None:
    job_id = gw.enqueue(n=1)
    [job] = gw.activate(timeout=1000)
    before = gw.broker.get(job_id)
    gw.stub.UpdateJobTimeout(pb.UpdateJobTimeoutRequest(jobKey=job.key, timeout=600_000))
    after = gw.broker.get(job_id)
    assert before is not None and after is not None
    assert (after.lease_expires_at or 0) > (before.lease_expires_at or 0) + 500


def test_a_long_poll_gets_a_job_enqueued_while_it_waits(gw: Gateway) -> None:
    got: list[Any] = []
    request = pb.ActivateJobsRequest(
        type=TYPE, worker="w", timeout=30_000, maxJobsToActivate=5, requestTimeout=60_000
    )
    poll = threading.Thread(
        target=lambda: got.extend(
            j for r in gw.stub.ActivateJobs(request, timeout=90) for j in r.jobs
        )
    )
    poll.start()
    job_id = gw.enqueue(n=1)
    poll.join(90)
    assert [j.key for j in got] == [gw.broker.job_keys([job_id])[job_id]]


def test_a_stream_pushes_jobs_as_they_come(gw: Gateway) -> None:
    stream = gw.stub.StreamActivatedJobs(
        pb.StreamActivatedJobsRequest(type=TYPE, worker="s", timeout=30_000), timeout=60
    )
    job_id = gw.enqueue(n=7)
    first = next(iter(stream))
    stream.cancel()
    assert first.key == gw.broker.job_keys([job_id])[job_id]
    assert json.loads(first.variables) == {"n": 7}


def test_other_calls_are_unimplemented(gw: Gateway) -> None:
    err = _refused(gw.stub.DeployResource, pb.DeployResourceRequest())
    assert _code(err) is grpc.StatusCode.UNIMPLEMENTED


def test_a_token_is_required_when_the_server_has_one(tmp_path: Path) -> None:
    access = Access(admin_tokens=("s3cret",), read_tokens=("look",))
    with _serve(tmp_path, access=access) as gw:
        err = _refused(gw.stub.Topology, pb.TopologyRequest())
        assert _code(err) is grpc.StatusCode.UNAUTHENTICATED and "Bearer" in _details(err)
        wrong = [("authorization", "Bearer nope")]
        err = _refused(gw.stub.Topology, pb.TopologyRequest(), metadata=wrong)
        assert _code(err) is grpc.StatusCode.UNAUTHENTICATED
        read = [("authorization", "Bearer look")]
        err = _refused(gw.stub.Topology, pb.TopologyRequest(), metadata=read)
        assert _code(err) is grpc.StatusCode.PERMISSION_DENIED
        assert gw.stub.Topology(pb.TopologyRequest(), metadata=BEARER, timeout=10).clusterSize == 1


def test_calls_beyond_the_limit_are_resource_exhausted(tmp_path: Path) -> None:
    with _serve(tmp_path, max_calls=2) as gw:
        request = pb.ActivateJobsRequest(
            type=TYPE, worker="w", timeout=30_000, maxJobsToActivate=1, requestTimeout=60_000
        )
        codes: list[grpc.StatusCode] = []
        got: list[int] = []

        def poll() -> None:
            try:
                got.extend(j.key for r in gw.stub.ActivateJobs(request, timeout=90) for j in r.jobs)
                codes.append(grpc.StatusCode.OK)
            except grpc.RpcError as exc:
                codes.append(_code(exc))

        # three long polls of a minute on a server that serves two calls at once
        polls = [threading.Thread(target=poll) for _ in range(3)]
        for p in polls:
            p.start()
        wait_for(lambda: codes, 30, "a long poll refused")
        assert codes == [grpc.StatusCode.RESOURCE_EXHAUSTED]
        gw.enqueue(n=1)
        gw.enqueue(n=2)  # each waiting poll gets one and ends
        for p in polls:
            p.join(90)
        assert Counter(c.name for c in codes) == {"RESOURCE_EXHAUSTED": 1, "OK": 2}
        assert len(got) == 2
        assert gw.stub.Topology(pb.TopologyRequest(), timeout=10).clusterSize == 1


METHODS = {
    "ActivateJobs": (pb.ActivateJobsRequest, True),
    "StreamActivatedJobs": (pb.StreamActivatedJobsRequest, True),
    "CompleteJob": (pb.CompleteJobRequest, False),
    "FailJob": (pb.FailJobRequest, False),
    "ThrowError": (pb.ThrowErrorRequest, False),
    "UpdateJobRetries": (pb.UpdateJobRetriesRequest, False),
    "UpdateJobTimeout": (pb.UpdateJobTimeoutRequest, False),
    "Topology": (pb.TopologyRequest, False),
}
VALUES: list[Any] = [0, -1, 1, 2**31 - 1, -(2**31), 2**63 - 1, -(2**63)]
TEXTS = ["", "x", "\x00", "{", "[]", "null", '{"a": 1e400}', "é" * 300, "{}" * 5000]


def _random_message(rng: random.Random, kind: Any, key: int) -> bytes:
    """Random bytes, or a real message of the kind with random field values."""
    if rng.random() < 0.4:
        return rng.randbytes(rng.randrange(0, 64))
    message = kind()
    for field in kind.DESCRIPTOR.fields:
        if rng.random() < 0.3:
            continue
        if field.type == field.TYPE_STRING:
            value: Any = rng.choice([*TEXTS, TYPE])
        elif field.name == "jobKey":
            value = rng.choice([key, *VALUES])
        else:
            value = rng.choice(VALUES)
        if field.type in (field.TYPE_INT32, field.TYPE_SINT32):
            value = max(min(value, 2**31 - 1), -(2**31))
        try:
            if field.is_repeated:
                getattr(message, field.name).append(value)
            else:
                setattr(message, field.name, value)
        except (TypeError, ValueError):
            continue
    data: bytes = message.SerializeToString()
    return data


def test_a_bounded_fuzz_of_malformed_requests_gets_statuses_never_a_crash(gw: Gateway) -> None:
    rng = random.Random(24)
    codes: dict[str, set[str]] = {}
    for _ in range(3):
        gw.enqueue(n=1)
    keys = [j.key for j in gw.activate(timeout=600_000)]
    for name, (kind, streaming) in METHODS.items():
        path = f"/gateway_protocol.Gateway/{name}"
        call = (gw.channel.unary_stream if streaming else gw.channel.unary_unary)(path)
        for _ in range(40):
            data = _random_message(rng, kind, rng.choice(keys))
            try:
                result = call(data, timeout=2)
                if streaming:
                    for _ in result:
                        break
                    result.cancel()
                codes.setdefault(name, set()).add("OK")
            except grpc.RpcError as exc:
                code = _code(exc)
                assert code is not grpc.StatusCode.UNKNOWN, (name, data, _details(exc))
                codes.setdefault(name, set()).add(code.name)
    # the server answers as before
    assert gw.stub.Topology(pb.TopologyRequest(), timeout=10).clusterSize == 1
    assert "INVALID_ARGUMENT" in codes["ActivateJobs"] and "INVALID_ARGUMENT" in codes["FailJob"]


@pytest.mark.parametrize("data", [b"\xff" * 12, b"\x0a\xff\xff\xff\xff\x0f", b"\x08"])
def test_bytes_that_are_no_message_are_invalid_argument_on_every_method(
    gw: Gateway, data: bytes
) -> None:
    for name, (_kind, streaming) in METHODS.items():
        path = f"/gateway_protocol.Gateway/{name}"
        call = (gw.channel.unary_stream if streaming else gw.channel.unary_unary)(path)
        err = _refused(call, data)
        assert _code(err) is grpc.StatusCode.INVALID_ARGUMENT, (name, _details(err))
        assert f"the request to {name} is not a valid protobuf message" in _details(err)
        assert f"({len(data)} bytes" in _details(err)
    assert gw.stub.Topology(pb.TopologyRequest(), timeout=10).clusterSize == 1


def test_a_broker_outage_is_unavailable_naming_the_store() -> None:
    broker = open_broker("postgresql://127.0.0.1:1/test")  # nothing listens there
    server = ZeebeServer(broker, host="127.0.0.1", port=0)
    server.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            stub = GatewayStub(channel)
            err = _refused(stub.CompleteJob, pb.CompleteJobRequest(jobKey=5))
            assert _code(err) is grpc.StatusCode.UNAVAILABLE
            assert "127.0.0.1:1" in _details(err)
            request = pb.ActivateJobsRequest(type=TYPE, timeout=1000, maxJobsToActivate=1)
            assert _code(_refused(stub.ActivateJobs, request)) is grpc.StatusCode.UNAVAILABLE
    finally:
        server.stop(0)
        broker.close()


def test_the_cli_refuses_half_a_tls_setup_and_a_taken_port(tmp_path: Path) -> None:
    import click

    import faena
    from faena.cli.zeebe import zeebe_running

    pem = tmp_path / "x.pem"
    pem.write_text("x")
    app = faena.App(broker=f"sqlite:///{tmp_path / 'faena.db'}")
    try:
        half = {"zeebe_port": 0, "zeebe_cert": str(pem), "zeebe_key": None}
        both = "both --zeebe-cert and --zeebe-key"
        with pytest.raises(click.UsageError, match=both), zeebe_running(app, "::", (), half):
            pass
        no_port = {"zeebe_port": None, "zeebe_cert": str(pem), "zeebe_key": str(pem)}
        need_port = "need --zeebe-port"
        with (
            pytest.raises(click.UsageError, match=need_port),
            zeebe_running(app, "::", (), no_port),
        ):
            pass
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            busy = {"zeebe_port": taken.getsockname()[1]}
            free = "give\\s+--zeebe-port a free port"
            with (
                pytest.raises(click.ClickException, match=free),
                zeebe_running(app, "127.0.0.1", (), busy),
            ):
                pass
    finally:
        app.close()


def test_a_long_poll_whose_client_went_away_leaves_the_job_to_others(gw: Gateway) -> None:
    request = pb.ActivateJobsRequest(
        type=TYPE, worker="gone", timeout=600_000, maxJobsToActivate=1, requestTimeout=60_000
    )
    poll = gw.stub.ActivateJobs(request, timeout=90)
    wakeups = gw.server.gateway.wakeups
    wait_for(lambda: TYPE in wakeups.watched(), 10, "the long poll to wait on the server")
    poll.cancel()
    job_id = gw.enqueue(n=1)  # wakes the gone poll, which must not keep it for 10 minutes
    [job] = wait_for(lambda: gw.activate(), 30, "another worker to get the job")
    assert job.key == gw.broker.job_keys([job_id])[job_id] and job.worker == "w"
    stored = gw.broker.get(job_id)
    assert stored is not None and stored.tries == 1 and stored.worker == "w"
