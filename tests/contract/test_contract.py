"""Every guarantee of DESIGN section 2 that a broker carries, against every backend."""

from __future__ import annotations

import select

import pytest

from faena.brokers.protocol import Broker
from faena.core.clock import ManualClock
from faena.core.job import ErrorInfo, Lease, NewJob, Outcome
from faena.core.states import JobState
from faena.errors import InvalidTransitionError, JobNotFoundError, UnknownPoolError

LEASE = 30.0
Q = ["etl"]


def new(task: str = "t", queue: str = "etl", **kw: object) -> NewJob:
    return NewJob(task=task, queue=queue, **kw)  # type: ignore[arg-type]


def claim(broker: Broker, worker: str = "w1", limit: int = 10, queues: list[str] = Q):
    return broker.claim(worker, queues, limit, LEASE).jobs


def ok(job_id: str, attempt: int, result: str = "1") -> Outcome:
    return Outcome(job_id, attempt, JobState.SUCCEEDED, result_json=result)


# --- enqueue and inspection -----------------------------------------------------------


def test_enqueue_returns_stored_jobs(broker: Broker, clock: ManualClock) -> None:
    [job] = broker.enqueue([new(args_json='["users"]', kwargs_json='{"day":"2026-11-27"}')])
    assert job.state is JobState.QUEUED
    assert job.attempt == 0 and job.tries == 0
    assert job.enqueued_at == pytest.approx(clock.now())
    stored = broker.get(job.id)
    assert stored is not None
    assert stored.args == ["users"] and stored.kwargs == {"day": "2026-11-27"}
    assert stored.task == "t" and stored.queue == "etl" and stored.pool == "default_pool"
    assert broker.get("nope") is None


def test_bulk_enqueue_is_all_or_nothing(broker: Broker) -> None:
    with pytest.raises(UnknownPoolError, match="no_such_pool"):
        broker.enqueue([new(), new(pool="no_such_pool"), new()])
    assert broker.list_jobs() == []
    jobs = broker.enqueue([new(task=f"t{i}") for i in range(50)])
    assert len({j.id for j in jobs}) == 50
    assert len(broker.list_jobs(limit=1000)) == 50


def test_list_jobs_filters_newest_first(broker: Broker) -> None:
    a, b, c = broker.enqueue([new(task="a"), new(task="b", queue="dq"), new(task="c")])
    assert [j.id for j in broker.list_jobs()] == [c.id, b.id, a.id]
    assert [j.id for j in broker.list_jobs(queue="dq")] == [b.id]
    assert [j.id for j in broker.list_jobs(task="a")] == [a.id]
    assert [j.id for j in broker.list_jobs(limit=1, offset=1)] == [b.id]
    [got] = claim(broker, limit=1)
    assert [j.id for j in broker.list_jobs(state=JobState.RUNNING)] == [got.id]


# --- order ----------------------------------------------------------------------------


def test_priority_then_fifo(broker: Broker) -> None:
    low1, high1, low2, high2 = broker.enqueue(
        [new(priority=0), new(priority=5), new(priority=0), new(priority=5)]
    )
    order = [j.id for j in claim(broker, limit=4)]
    assert order == [high1.id, high2.id, low1.id, low2.id]


def test_fifo_within_priority_across_calls(broker: Broker, clock: ManualClock) -> None:
    ids = []
    for _ in range(5):
        ids.append(broker.enqueue([new()])[0].id)
        clock.advance(0.001)
    got = []
    for _ in range(5):
        got += [j.id for j in claim(broker, limit=1)]
    assert got == ids


def test_jobs_enqueued_alone_and_together_keep_order_and_are_seen_at_once(
    broker: Broker, clock: ManualClock
) -> None:
    [a] = broker.enqueue([new()])
    clock.advance(0.001)
    b, c = broker.enqueue([new(), new()])
    clock.advance(0.001)
    [d] = broker.enqueue([new()])
    assert broker.count_by_state()[("etl", JobState.QUEUED)] == 4
    assert {j.id for j in broker.list_jobs()} == {a.id, b.id, c.id, d.id}
    assert [s.waiting for s in broker.queue_stats() if s.queue == "etl"] == [4]
    assert [j.id for j in claim(broker, limit=4)] == [a.id, b.id, c.id, d.id]


def test_claim_only_named_queues(broker: Broker) -> None:
    broker.enqueue([new(queue="other")])
    assert claim(broker) == []
    assert len(claim(broker, queues=["etl", "other"])) == 1


def test_a_claim_from_several_queues_takes_jobs_by_priority_then_age_across_them(
    broker: Broker,
) -> None:
    """The queues of one claim are one order (priority, then enqueue order), wherever each
    job is, also past a first page of candidates that no pool admits (the claim looks on)."""
    broker.set_pools({"shut": 0})
    made = broker.enqueue(
        [new(queue="qa", priority=5, pool="shut"), new(queue="qb", priority=5, pool="shut")] * 4
        + [new(queue=q, priority=p) for q, p in [("qa", 1), ("qc", 2), ("qb", 1), ("qc", 0)]]
        + [new(queue="qb", priority=2), new(queue="qa", priority=0)]
    )
    runnable = [j for j in made if j.pool != "shut"]
    order = sorted(runnable, key=lambda j: -j.priority)  # stable: enqueue order within one
    got = [j.id for _ in range(3) for j in claim(broker, limit=2, queues=["qa", "qb", "qc"])]
    assert got == [j.id for j in order]


def test_delayed_job_waits_for_its_time(broker: Broker, clock: ManualClock) -> None:
    [job] = broker.enqueue([new(run_at=clock.now() + 60)])
    assert job.state is JobState.SCHEDULED
    assert broker.next_run_at(Q) == pytest.approx(clock.now() + 60)
    assert claim(broker) == []
    clock.advance(60)
    [got] = claim(broker)
    assert got.id == job.id and got.state is JobState.RUNNING


# --- leases and fencing ---------------------------------------------------------------


def test_live_lease_is_never_handed_out_twice(broker: Broker, clock: ManualClock) -> None:
    broker.enqueue([new()])
    [job] = claim(broker, "w1")
    assert job.attempt == 1 and job.tries == 1 and job.worker == "w1"
    assert job.lease_expires_at == pytest.approx(clock.now() + LEASE)
    clock.advance(LEASE - 1)
    assert claim(broker, "w2") == []
    assert broker.reap() == []


def test_heartbeat_keeps_a_long_job(broker: Broker, clock: ManualClock) -> None:
    broker.enqueue([new()])
    [job] = claim(broker, "w1")
    for _ in range(10):
        clock.advance(LEASE / 3)
        hb = broker.heartbeat("w1", [Lease(job.id, job.attempt)], LEASE)
        assert hb.lost == frozenset()
        assert claim(broker, "w2") == []
    assert broker.finish([ok(job.id, job.attempt)]) == [True]


def test_expired_lease_runs_again_keeping_its_place(broker: Broker, clock: ManualClock) -> None:
    [first] = broker.enqueue([new()])
    claim(broker, "w1")
    clock.advance(1)
    [later] = broker.enqueue([new()])
    clock.advance(LEASE)
    got = claim(broker, "w2", limit=1)
    assert [j.id for j in got] == [first.id]
    assert got[0].attempt == 2 and got[0].tries == 2 and got[0].worker == "w2"
    assert claim(broker, "w2", limit=1)[0].id == later.id


def test_reap_requeues_or_kills(broker: Broker, clock: ManualClock) -> None:
    a, b = broker.enqueue([new(max_attempts=2), new(max_attempts=1)])
    claim(broker, "w1")
    clock.advance(LEASE + 1)
    reaped = {r.job.id: r.new_state for r in broker.reap()}
    assert reaped == {a.id: JobState.QUEUED, b.id: JobState.DEAD}
    dead = broker.get(b.id)
    assert dead is not None and dead.error is not None
    assert dead.error.type == "WorkerLost"
    assert broker.reap() == []


def test_stale_writes_are_rejected(broker: Broker, clock: ManualClock) -> None:
    broker.enqueue([new()])
    [old] = claim(broker, "w1")
    clock.advance(LEASE + 1)
    [cur] = claim(broker, "w2")
    assert cur.attempt == old.attempt + 1
    stale = Lease(old.id, old.attempt)
    assert broker.heartbeat("w1", [stale], LEASE).lost == {old.id}
    assert broker.finish([ok(old.id, old.attempt)]) == [False]
    assert broker.release([stale]) == [False]
    failed = Outcome(old.id, old.attempt, JobState.DEAD, error=ErrorInfo("X", "y"))
    assert broker.finish([failed]) == [False]
    job = broker.get(cur.id)
    assert job is not None and job.state is JobState.RUNNING and job.worker == "w2"
    assert broker.finish([ok(cur.id, cur.attempt, '"second"')]) == [True]
    done = broker.get(cur.id)
    assert done is not None and done.state is JobState.SUCCEEDED and done.result == "second"
    assert broker.finish([ok(cur.id, cur.attempt)]) == [False]


def test_finish_group_mixes_fresh_and_stale(broker: Broker, clock: ManualClock) -> None:
    broker.enqueue([new(), new()])
    a, b = claim(broker)
    assert broker.finish([ok(a.id, a.attempt), ok(b.id, b.attempt + 7)]) == [True, False]


# --- limits ---------------------------------------------------------------------------


def test_pool_slots_bound_running_jobs(broker: Broker) -> None:
    broker.enqueue([new(pool="small") for _ in range(10)])
    assert len(claim(broker, "w1", limit=10)) == 3
    assert claim(broker, "w2", limit=10) == []
    stats = {p.pool: p for p in broker.pool_stats()}
    assert (stats["small"].size, stats["small"].used) == (3, 3)


def test_pool_slots_per_job(broker: Broker) -> None:
    broker.enqueue([new(pool="small", pool_slots=2) for _ in range(3)])
    assert len(claim(broker, limit=10)) == 1
    stats = {p.pool: p for p in broker.pool_stats()}
    assert stats["small"].used == 2


def test_full_pool_does_not_block_other_pools(broker: Broker) -> None:
    broker.enqueue([new(pool="tiny"), new(pool="tiny"), new(pool="dq_pool")])
    got = claim(broker, limit=10)
    assert sorted(j.pool for j in got) == ["dq_pool", "tiny"]


def test_slots_come_back_with_finish_and_with_expiry(broker: Broker, clock: ManualClock) -> None:
    broker.enqueue([new(pool="tiny") for _ in range(3)])
    [a] = claim(broker)
    broker.finish([ok(a.id, a.attempt)])
    [b] = claim(broker)
    clock.advance(LEASE + 1)
    [c] = claim(broker)
    assert c.id == b.id and c.attempt == 2


def test_parallelism_cap(broker: Broker) -> None:
    broker.set_parallelism(4)
    assert broker.get_parallelism() == 4
    broker.enqueue([new(queue=q) for q in ("etl", "dq") for _ in range(5)])
    assert len(claim(broker, "w1", limit=3)) == 3
    assert len(claim(broker, "w2", limit=3, queues=["dq"])) == 1
    assert claim(broker, "w3", limit=3, queues=["etl", "dq"]) == []
    broker.set_parallelism(None)
    assert len(claim(broker, "w3", limit=10, queues=["etl", "dq"])) == 6


def test_resizing_a_pool(broker: Broker) -> None:
    broker.set_pools({"tiny": 2})
    broker.enqueue([new(pool="tiny") for _ in range(3)])
    assert len(claim(broker)) == 2


def test_unknown_pool_is_refused(broker: Broker) -> None:
    with pytest.raises(UnknownPoolError, match="faena pools set"):
        broker.enqueue([new(pool="gpu_pool")])
    assert broker.list_jobs() == []  # one job alone (SQLite's one-statement path) writes nothing


# --- retries and dead jobs ------------------------------------------------------------


def test_failed_attempt_retries_after_backoff(broker: Broker, clock: ManualClock) -> None:
    broker.enqueue([new()])
    [job] = claim(broker)
    err = ErrorInfo("ValueError", "bad row 7", "Traceback ...")
    out = Outcome(job.id, job.attempt, JobState.FAILED, error=err, retry_at=clock.now() + 10)
    assert broker.finish([out]) == [True]
    failed = broker.get(job.id)
    assert failed is not None and failed.state is JobState.FAILED
    assert failed.error == err
    assert claim(broker) == []
    clock.advance(10)
    [again] = claim(broker)
    assert again.attempt == 2 and again.tries == 2


def test_dead_keeps_the_error_and_can_be_retried(broker: Broker, clock: ManualClock) -> None:
    broker.enqueue([new(max_attempts=1)])
    [job] = claim(broker)
    err = ErrorInfo("KeyError", "'x'", "tb")
    assert broker.finish([Outcome(job.id, job.attempt, JobState.DEAD, error=err)]) == [True]
    dead = broker.get(job.id)
    assert dead is not None and dead.state is JobState.DEAD and dead.error == err
    assert dead.finished_at is not None
    again = broker.retry(job.id)
    assert again.state is JobState.QUEUED and again.tries == 0
    [job2] = claim(broker)
    assert job2.id == job.id and job2.attempt == 2 and job2.tries == 1


def test_retry_refuses_live_jobs(broker: Broker) -> None:
    [job] = broker.enqueue([new()])
    with pytest.raises(InvalidTransitionError, match="only dead or cancelled"):
        broker.retry(job.id)
    with pytest.raises(JobNotFoundError):
        broker.retry("missing")


# --- release --------------------------------------------------------------------------


def test_release_gives_the_attempt_back(broker: Broker, clock: ManualClock) -> None:
    [first] = broker.enqueue([new(max_attempts=1)])
    clock.advance(1)
    broker.enqueue([new()])
    [job] = claim(broker, limit=1)
    assert broker.release([Lease(job.id, job.attempt)]) == [True]
    back = broker.get(job.id)
    assert back is not None and back.state is JobState.QUEUED and back.tries == 0
    [again] = claim(broker, "w2", limit=1)
    assert again.id == first.id and again.attempt == 2 and again.tries == 1


# --- idempotency ----------------------------------------------------------------------


def test_idempotency_key_returns_the_same_job(broker: Broker) -> None:
    [a] = broker.enqueue([new(idempotency_key="users/2026-11-27")])
    [b] = broker.enqueue([new(idempotency_key="users/2026-11-27")])
    assert a.id == b.id
    [job] = claim(broker)
    [c] = broker.enqueue([new(idempotency_key="users/2026-11-27")])
    assert c.id == a.id
    broker.finish([ok(job.id, job.attempt)])
    [d] = broker.enqueue([new(idempotency_key="users/2026-11-27")])
    assert d.id == a.id and d.state is JobState.SUCCEEDED


def test_idempotency_key_does_not_block_retries(broker: Broker, clock: ManualClock) -> None:
    [a] = broker.enqueue([new(idempotency_key="k")])
    [job] = claim(broker)
    out = Outcome(job.id, job.attempt, JobState.FAILED, error=ErrorInfo("E", "m"), retry_at=0)
    broker.finish([out])
    assert broker.enqueue([new(idempotency_key="k")])[0].id == a.id
    [again] = claim(broker)
    assert again.id == a.id


def test_idempotency_key_is_free_after_dead(broker: Broker) -> None:
    [a] = broker.enqueue([new(idempotency_key="k", max_attempts=1)])
    [job] = claim(broker)
    broker.finish([Outcome(job.id, job.attempt, JobState.DEAD, error=ErrorInfo("E", "m"))])
    [b] = broker.enqueue([new(idempotency_key="k")])
    assert b.id != a.id
    with pytest.raises(InvalidTransitionError, match="idempotency key"):
        broker.retry(a.id)


def test_idempotency_within_one_bulk_call(broker: Broker) -> None:
    a, b = broker.enqueue([new(idempotency_key="same"), new(idempotency_key="same")])
    assert a.id == b.id
    assert len(broker.list_jobs()) == 1


def test_an_enqueue_sent_again_returns_the_jobs_it_created(broker: Broker) -> None:
    # A producer whose reply was lost sends the same jobs (same ids) again.
    first, second = new(), new()
    [a] = broker.enqueue([first])
    [job] = claim(broker)
    again = broker.enqueue([first, second, first])
    assert [j.id for j in again] == [a.id, second.id, a.id]
    assert again[0].state is JobState.RUNNING and again[0].attempt == job.attempt
    assert again[1].state is JobState.QUEUED
    [single] = broker.enqueue([first])  # one job alone, as enqueue() sends it
    assert single.id == a.id and single.state is JobState.RUNNING
    assert sorted(j.id for j in broker.list_jobs()) == sorted([a.id, second.id])
    assert [j.id for j in claim(broker)] == [second.id]


# --- cancel ---------------------------------------------------------------------------


def test_cancel_pending_and_running(broker: Broker, clock: ManualClock) -> None:
    a, b = broker.enqueue([new(), new()])
    assert broker.cancel(a.id).state is JobState.CANCELLED
    [job] = claim(broker)
    assert job.id == b.id
    flagged = broker.cancel(b.id)
    assert flagged.state is JobState.RUNNING and flagged.cancel_requested
    hb = broker.heartbeat("w1", [Lease(job.id, job.attempt)], LEASE)
    assert hb.cancel == {job.id}
    done = Outcome(job.id, job.attempt, JobState.CANCELLED)
    assert broker.finish([done]) == [True]
    with pytest.raises(InvalidTransitionError):
        broker.cancel(b.id)


def test_cancelled_running_job_of_a_dead_worker_ends_cancelled(
    broker: Broker, clock: ManualClock
) -> None:
    broker.enqueue([new()])
    [job] = claim(broker)
    broker.cancel(job.id)
    clock.advance(LEASE + 1)
    assert [r.new_state for r in broker.reap()] == [JobState.CANCELLED]


# --- statistics -----------------------------------------------------------------------


def test_queue_stats(broker: Broker, clock: ManualClock) -> None:
    broker.enqueue([new(), new(queue="dq")])
    clock.advance(5)
    broker.enqueue([new(), new(run_at=clock.now() + 100)])
    claim(broker, limit=1)
    stats = {s.queue: s for s in broker.queue_stats()}
    assert (stats["etl"].waiting, stats["etl"].scheduled, stats["etl"].running) == (1, 1, 1)
    assert stats["etl"].oldest_age == pytest.approx(0, abs=0.01)
    assert stats["dq"].waiting == 1
    assert stats["dq"].oldest_age == pytest.approx(5, abs=0.01)


def test_count_by_state(broker: Broker) -> None:
    broker.enqueue([new(), new(), new(queue="dq")])
    claim(broker, limit=1)
    counts = broker.count_by_state()
    assert counts[("etl", JobState.QUEUED)] == 1
    assert counts[("etl", JobState.RUNNING)] == 1
    assert counts[("dq", JobState.QUEUED)] == 1


def test_prune_removes_old_terminal_jobs(broker: Broker, clock: ManualClock) -> None:
    broker.enqueue([new(idempotency_key="k"), new()])
    a, _b = claim(broker)
    broker.finish([ok(a.id, a.attempt)])
    clock.advance(100)
    assert broker.prune(clock.now() - 50) == 1
    assert broker.get(a.id) is None
    assert len(broker.list_jobs()) == 1
    [fresh] = broker.enqueue([new(idempotency_key="k")])
    assert fresh.id != a.id


# --- finish and claim in one step, wake-ups --------------------------------------------


def test_finish_and_claim(broker: Broker) -> None:
    broker.enqueue([new(pool="tiny"), new(pool="tiny")])
    [a] = claim(broker)
    done, nxt = broker.finish_and_claim([ok(a.id, a.attempt)], "w1", Q, 5, LEASE)
    assert done == [True]
    assert len(nxt.jobs) == 1 and nxt.jobs[0].id != a.id


def test_waker_turns_readable_on_enqueue(broker: Broker) -> None:
    waker = broker.waker(Q)
    try:
        waker.drain()
        broker.enqueue([new()])
        readable, _, _ = select.select([waker], [], [], 5.0)
        assert readable == [waker]
        waker.drain()
    finally:
        waker.close()


def test_outcome_can_reset_the_attempt_budget(broker: Broker, clock: ManualClock) -> None:
    broker.enqueue([new(max_attempts=1)])
    [job] = claim(broker)
    out = Outcome(
        job.id, job.attempt, JobState.FAILED, error=ErrorInfo("E", "m"), retry_at=0, max_attempts=3
    )
    assert broker.finish([out]) == [True]
    stored = broker.get(job.id)
    assert stored is not None and stored.max_attempts == 3 and stored.state is JobState.FAILED
    claim(broker)
    clock.advance(LEASE + 1)
    assert [r.new_state for r in broker.reap()] == [JobState.QUEUED]


def test_set_pools_resizes_only_the_pools_named(broker: Broker) -> None:
    broker.set_pools({"default_pool": 5})
    broker.set_pools({"tiny": 2})
    sizes = {p.pool: p.size for p in broker.pool_stats()}
    assert sizes["default_pool"] == 5 and sizes["tiny"] == 2


def test_saturated_claim_says_so(broker: Broker) -> None:
    broker.enqueue([new(pool="tiny"), new(pool="tiny")])
    first = broker.claim("w1", Q, 5, LEASE)
    assert len(first.jobs) == 1
    assert first.saturated
    # the exchange a worker makes says so too; a claim that leaves nothing behind does not
    _, again = broker.finish_and_claim([], "w1", Q, 5, LEASE)
    assert again.jobs == [] and again.saturated is first.saturated
    broker.set_parallelism(1)
    broker.enqueue([new(pool="small")])
    capped = broker.claim("w1", Q, 5, LEASE)  # the cap of 1 is taken by the tiny job
    assert capped.jobs == [] and capped.saturated is first.saturated
    broker.set_parallelism(None)
    assert [j.pool for j in broker.claim("w1", Q, 5, LEASE).jobs] == ["small"]
    assert not broker.claim("w1", ["nothing_queued"], 5, LEASE).saturated
