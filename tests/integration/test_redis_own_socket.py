"""faena's own socket to Redis (the hot path) speaks the URL's password and database, and
tells refused credentials apart from an unreachable server."""

from __future__ import annotations

import importlib.util
import subprocess
import uuid

import pytest
from tests.conftest import need
from tests.redis_server import RedisServer

from faena.core.job import NewJob, Outcome
from faena.core.states import JobState
from faena.errors import BrokerError

pytestmark = pytest.mark.redis

LEASE = 30.0


def _require_password(server: RedisServer, password: str) -> None:
    subprocess.run(
        ["redis-cli", "-p", str(server.port), "CONFIG", "SET", "requirepass", password],
        check=True,
        capture_output=True,
    )


def test_the_hot_path_authenticates_and_selects_the_database(redis_server: RedisServer) -> None:
    need(importlib.util.find_spec("hiredis") is not None, "hiredis is not installed")
    import redis

    from faena.brokers.redis import RedisBroker

    _require_password(redis_server, "s3cret")
    prefix = f"own{uuid.uuid4().hex[:6]}"
    broker = RedisBroker.from_url(
        f"redis://:s3cret@127.0.0.1:{redis_server.port}/3?prefix={prefix}"
    )
    try:
        broker.setup()
        [job] = broker.enqueue([NewJob(task="t", queue="q")])
        [claimed] = broker.claim("w", ["q"], 1, LEASE).jobs
        assert claimed.id == job.id
        done = Outcome(claimed.id, claimed.attempt, JobState.SUCCEEDED, result_json="1")
        assert broker.finish([done]) == [True]
        assert [type(w).__name__ for w in broker._link._free] == ["SocketWire"]
        plain = redis.Redis(port=redis_server.port, password="s3cret", db=3)
        assert plain.exists(f"{{{prefix}}}:meta")  # written in database 3
        assert not redis.Redis(port=redis_server.port, password="s3cret", db=0).keys("*")
    finally:
        broker.close()


def test_refused_credentials_are_said_as_such_and_not_retried(
    redis_server: RedisServer,
) -> None:
    from faena.brokers.redis import RedisBroker

    _require_password(redis_server, "s3cret")
    url = f"redis://:wrong@127.0.0.1:{redis_server.port}/0?prefix=own{uuid.uuid4().hex[:6]}"
    broker = RedisBroker.from_url(url)
    try:
        with pytest.raises(BrokerError, match="refused faena's credentials") as info:
            broker.enqueue([NewJob(task="t", queue="q")])
        assert "wrong" not in str(info.value)  # the password is masked
    finally:
        broker.close()
