"""Redis-broker specifics the contract suite does not reach: the Lua copies of core rules,
schema refusal, URL and connection errors, ordering across queues and pools, clean-up."""

from __future__ import annotations

import importlib.util
import uuid
from collections.abc import Iterator

import pytest
from tests.conftest import REDIS_URL, need, port_open, sockets_open

from faena.core import lifecycle
from faena.core.checks import PRIORITY_MAX, PRIORITY_MIN
from faena.core.clock import ManualClock
from faena.core.job import NewJob, Outcome
from faena.core.states import JobState
from faena.errors import BrokerError, BrokerURLError, SchemaError

pytestmark = pytest.mark.redis

LEASE = 30.0


def _url(prefix: str) -> str:
    sep = "&" if "?" in REDIS_URL else "?"
    return f"{REDIS_URL}{sep}prefix={prefix}"


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def broker(clock: ManualClock) -> Iterator[object]:
    need(importlib.util.find_spec("redis") is not None, "redis-py is not installed")
    need(port_open("127.0.0.1", 6379), "Redis is not running on 127.0.0.1:6379")
    from faena.brokers.redis import RedisBroker

    b = RedisBroker.from_url(_url(f"r{uuid.uuid4().hex[:10]}"), clock=clock)
    b.setup()
    b.set_pools({"small": 3})
    yield b
    b.destroy()
    b.close()


def test_worker_lost_message_matches_the_core_rule(broker, clock: ManualClock) -> None:
    broker.enqueue([NewJob(task="t", queue="q", max_attempts=1)])
    [job] = broker.claim("w-7", ["q"], 1, LEASE).jobs
    clock.advance(LEASE)
    [reaped] = broker.reap()
    expected = lifecycle.expire(job, clock.now())
    assert reaped.job.error == expected.error
    assert reaped.job == expected.evolve(attempts=())  # a reap does not read the history
    stored = broker.get(job.id)
    assert stored is not None and stored.attempts == expected.attempts


def _mixed_order(broker) -> list[str]:
    a = broker.enqueue([NewJob(task="a", queue="q1", priority=1)])[0]
    b = broker.enqueue([NewJob(task="b", queue="q2", priority=1, pool="small")])[0]
    c = broker.enqueue([NewJob(task="c", queue="q2", priority=9)])[0]
    d = broker.enqueue([NewJob(task="d", queue="q1", priority=-5, pool="small", pool_slots=3)])
    e = broker.enqueue([NewJob(task="e", queue="q1", priority=-9, pool="small", pool_slots=2)])
    names = {j.id: j.task for j in (a, b, c, *d, *e)}
    return [names[j.id] for j in broker.claim("w", ["q1", "q2"], 10, LEASE).jobs]


def test_order_across_queues_and_pools(broker, clock: ManualClock) -> None:
    from faena.brokers.memory import MemoryBroker

    memory = MemoryBroker(clock=clock)
    memory.set_pools({"small": 3})
    # priority first, then enqueue order across queues; d (3 slots) does not fit what b
    # left, but e (2 slots), behind it, does
    assert _mixed_order(broker) == _mixed_order(memory) == ["c", "a", "b", "e"]


def test_the_extreme_priorities_keep_their_order(broker) -> None:
    # every backend takes the 32-bit range (PostgreSQL stores an integer); beyond, refused
    ids = [
        broker.enqueue([NewJob(task="t", queue="q", priority=p)])[0].id
        for p in (PRIORITY_MIN, 0, PRIORITY_MAX, -1, 1)
    ]
    got = [j.id for j in broker.claim("w", ["q"], 10, LEASE).jobs]
    assert got == [ids[2], ids[4], ids[1], ids[3], ids[0]]


def test_prune_leaves_no_index_behind(broker, clock: ManualClock) -> None:
    broker.enqueue([NewJob(task="t", queue="q", idempotency_key=f"k{i}") for i in range(5)])
    jobs = broker.claim("w", ["q"], 5, LEASE).jobs
    broker.finish([Outcome(j.id, j.attempt, JobState.SUCCEEDED) for j in jobs])
    clock.advance(10)
    assert broker.prune(clock.now()) == 5
    client = broker._client
    tag = broker._tag
    leftovers = {k for k in client.scan_iter(match=f"{tag}:*")}
    assert not any(k.startswith(f"{tag}:j:") for k in leftovers)
    assert client.zcard(f"{tag}:all") == 0 and client.zcard(f"{tag}:done") == 0
    assert client.hlen(f"{tag}:idem") == 0
    assert broker.count_by_state() == {}


def test_newer_schema_is_refused(broker) -> None:
    broker._client.hset(f"{broker._tag}:meta", "schema", "99")
    with pytest.raises(SchemaError, match="schema version '99'"):
        broker.setup()


def test_keys_that_are_not_faenas_are_refused(broker) -> None:
    broker._client.delete(f"{broker._tag}:meta")
    broker._client.set(f"{broker._tag}:meta", "someone else's")
    with pytest.raises(SchemaError, match="not faena's"):
        broker.setup()


def test_bad_urls_are_explained() -> None:
    need(importlib.util.find_spec("redis") is not None, "redis-py is not installed")
    from faena.brokers.redis import RedisBroker

    with pytest.raises(BrokerURLError, match="prefix"):
        RedisBroker.from_url("redis://localhost:6379/0?prefix={bad}")
    with pytest.raises(BrokerURLError, match="not valid"):
        RedisBroker.from_url("redis://localhost:99999/0")


def test_unreachable_server_names_the_url_without_its_password(monkeypatch) -> None:
    need(importlib.util.find_spec("redis") is not None, "redis-py is not installed")
    from faena.brokers.redis import RedisBroker, connection

    monkeypatch.setattr(connection, "RETRIES", 1)
    broker = RedisBroker.from_url("redis://:s3cret@127.0.0.1:1/0")
    with pytest.raises(BrokerError) as info:
        broker.setup()
    message = str(info.value)
    assert "s3cret" not in message
    assert "redis://:***@127.0.0.1:1/0" in message
    assert "FAENA_BROKER_URL" in message
    assert info.value.__cause__ is not None
    broker.close()


def _enqueue_in_child(broker, out) -> None:
    out.put(broker.enqueue([NewJob(task="child", queue="q")])[0].id)


def test_a_forked_child_gets_its_own_connections(broker) -> None:
    import multiprocessing

    broker.enqueue([NewJob(task="parent", queue="q")])  # the parent holds a connection
    ctx = multiprocessing.get_context("fork")
    out = ctx.Queue()
    child = ctx.Process(target=_enqueue_in_child, args=(broker, out))
    child.start()
    child_id = out.get(timeout=30)
    child.join(timeout=30)
    assert child.exitcode == 0
    assert broker.get(child_id) is not None
    assert len(broker.enqueue([NewJob(task="parent", queue="q")])) == 1
    assert len(broker.list_jobs()) == 3


def test_the_library_is_loaded_again_when_the_server_lost_it(broker) -> None:
    import redis

    from faena.brokers.redis.scripts import library

    first = broker.enqueue([NewJob(task="t", queue="q")])[0]
    redis.Redis.from_url(REDIS_URL).function_delete(library().name)
    second = broker.enqueue([NewJob(task="t", queue="q")])[0]
    assert [j.id for j in broker.claim("w", ["q"], 5, LEASE).jobs] == [first.id, second.id]


def test_a_connection_the_server_closed_is_opened_again(broker) -> None:
    import redis

    broker.enqueue([NewJob(task="t", queue="q")])  # the broker holds a connection now
    admin = redis.Redis.from_url(REDIS_URL)
    mine = [c["id"] for c in admin.client_list() if c["cmd"] == "fcall"]
    assert mine, "the broker's connection is open"
    for client_id in mine:
        admin.client_kill_filter(_id=client_id)
    job = broker.enqueue([NewJob(task="t", queue="q")])[0]  # reconnects, then succeeds
    assert [j.id for j in broker.claim("w", ["q"], 5, LEASE).jobs][-1] == job.id


def test_an_error_reply_names_the_server_s_message(broker) -> None:
    broker._client.delete(f"{broker._tag}:intake")
    broker._client.set(f"{broker._tag}:intake", "not a list")
    with pytest.raises(BrokerError, match="WRONGTYPE") as info:
        broker.claim("w", ["q"], 1, LEASE)
    assert "ERR ERR" not in str(info.value)
    broker._client.delete(f"{broker._tag}:intake")
    assert broker.claim("w", ["q"], 1, LEASE).jobs == []  # the connection is still usable


def test_without_hiredis_the_calls_go_through_redis_py(broker, monkeypatch) -> None:
    import redis

    from faena.brokers.redis import connection
    from faena.brokers.redis.scripts import library

    monkeypatch.setattr(connection, "hiredis", None)
    monkeypatch.setattr(connection, "_pack_command", None)
    broker._link.close()  # the connections opened with hiredis go: new ones open without it
    first = broker.enqueue([NewJob(task="t", queue="q")])[0]
    assert [type(w).__name__ for w in broker._link._free] == ["ClientWire"]
    redis.Redis.from_url(REDIS_URL).function_delete(library().name)
    second = broker.enqueue([NewJob(task="t", queue="q")])[0]
    claimed = broker.claim("w", ["q"], 5, LEASE).jobs
    assert [j.id for j in claimed] == [first.id, second.id]
    done = [Outcome(j.id, j.attempt, JobState.SUCCEEDED, result_json="1") for j in claimed]
    assert broker.finish(done) == [True, True]


def test_a_server_older_than_redis_7_is_explained() -> None:
    from redis.exceptions import ResponseError

    from faena.brokers.redis.connection import describe, parse_url

    target = parse_url("redis://:secret@127.0.0.1:6379/0")
    exc = ResponseError("unknown command 'FCALL', with args beginning with: 'faena_x'")
    message = describe(target, exc)
    assert "Redis 7.0 or newer" in message and "secret" not in message


def test_a_big_bulk_sent_again_returns_its_jobs(broker) -> None:
    # more jobs than one variadic slice (1,000 arguments): the existence check is sliced too
    first = [NewJob(task="t", queue="q") for _ in range(2500)]
    created = broker.enqueue(first)
    extra = NewJob(task="t", queue="q")
    again = broker.enqueue([*first, extra])
    assert [j.id for j in again] == [*(j.id for j in created), extra.id]
    assert broker.queue_stats()[0].waiting == 2501


def test_jobs_enqueued_alone_are_indexed_in_their_order_by_the_next_call(broker) -> None:
    """A job enqueued alone waits on the intake list until a call needs the indexes; a long
    intake (more than one batch of 1,000) and a bulk enqueue after it keep enqueue order."""
    singles = [broker.enqueue([NewJob(task="t", queue="q")])[0].id for _ in range(2500)]
    r = broker._client
    assert r.llen(broker._key("intake")) == 2500
    assert r.zcard(broker._key("all")) == 0  # not indexed yet, but counted:
    assert broker.count_by_state() == {("q", JobState.QUEUED): 2500}
    bulk = [j.id for j in broker.enqueue([NewJob(task="t", queue="q") for _ in range(3)])]
    assert r.llen(broker._key("intake")) == 0
    last = broker.enqueue([NewJob(task="t", queue="q")])[0].id
    broker.set_pools({"default_pool": 3000})
    got: list[str] = []
    for _ in range(3):
        got += [j.id for j in broker.claim("w", ["q"], 1000, LEASE).jobs]
    assert got == singles + bulk + [last]
    stored = broker.get(last)
    assert stored is not None and stored.state is JobState.RUNNING


def test_a_job_enqueued_alone_is_seen_by_every_reader_at_once(broker, clock) -> None:
    [now] = broker.enqueue([NewJob(task="t", queue="q")])
    [later] = broker.enqueue([NewJob(task="t", queue="q", run_at=clock.now() + 60)])
    assert broker.next_run_at(["q"]) == pytest.approx(clock.now())
    assert {j.id for j in broker.list_jobs(queue="q")} == {now.id, later.id}
    [stats] = broker.queue_stats()
    assert (stats.waiting, stats.scheduled) == (1, 1)
    assert broker.cancel(later.id).state is JobState.CANCELLED
    [again] = broker.enqueue([NewJob(task="t", queue="q", id=now.id)])  # a re-sent enqueue
    assert again.id == now.id and again.enqueued_at == now.enqueued_at
    assert [j.id for j in broker.claim("w", ["q"], 5, LEASE).jobs] == [now.id]


def test_an_app_closes_the_broker_whose_setup_refused(broker) -> None:
    """A broker the app opened from its URL and whose setup failed (here: a newer schema) is
    closed at once, not left holding its connection until the GC finds it."""
    import faena

    broker._client.hset(f"{broker._tag}:meta", "schema", "99")
    before = sockets_open()
    app = faena.App(broker=broker.url)
    with pytest.raises(SchemaError, match="schema version '99'"):
        app.enqueue("t")
    assert sockets_open() == before, "the refused broker's connection is closed"
