"""``count_by_state`` and ``queue_stats`` equal a direct count of the jobs after every kind of
change of state: enqueue, claim and finish, reap, release, retry, cancel, the bulk ones,
bury, prune, pipelines and schedules, concurrent finishes, and the failures that change
nothing. SQLite and PostgreSQL keep them in counters written by triggers (migrations 12 and
15), Redis in its counts hash; memory counts its jobs, the reference."""

from __future__ import annotations

import threading
from collections.abc import Sequence

import pytest

from faena.brokers.protocol import Broker, QueueStat
from faena.core.clock import ManualClock
from faena.core.job import ErrorInfo, Job, Lease, NewJob, Outcome
from faena.core.runs import NewRun, NewStep
from faena.core.states import LEASED, PENDING, TERMINAL, JobState
from faena.errors import ConfigError, InvalidTransitionError
from tests.contract.conftest import Backend
from tests.contract.test_corrupt_rows import (  # noqa: F401 - the fixture applies only()
    _only_where_it_can_be_held,
    assert_buried,
    corrupt,
    only,
)

LEASE = 30.0
QUEUES = ["qa", "qb"]


def jobs_of(broker: Broker) -> list[Job]:
    found: list[Job] = []
    while page := broker.list_jobs(limit=1000, offset=len(found)):
        found += page
    return found


def direct_counts(jobs: Sequence[Job]) -> dict[tuple[str, JobState], int]:
    counts: dict[tuple[str, JobState], int] = {}
    for job in jobs:
        counts[(job.queue, job.state)] = counts.get((job.queue, job.state), 0) + 1
    return counts


def direct_queue_stats(jobs: Sequence[Job], now: float) -> list[QueueStat]:
    rows: dict[str, list[float]] = {}
    for job in jobs:
        if job.state in TERMINAL:
            continue
        row = rows.setdefault(job.queue, [0, 0, 0, 0.0])
        if job.state in PENDING and job.run_at <= now:
            row[0] += 1
            row[3] = max(row[3], now - job.run_at)
        elif job.state in PENDING:
            row[1] += 1
        elif job.state in LEASED:
            row[2] += 1
    return [QueueStat(q, int(r[0]), int(r[1]), int(r[2]), r[3]) for q, r in sorted(rows.items())]


def check(broker: Broker, clock: ManualClock, step: str) -> None:
    """The counts the broker keeps are the jobs it holds, counted one by one."""
    jobs = jobs_of(broker)
    assert broker.count_by_state() == direct_counts(jobs), step
    # a queue without live jobs has no row (Redis keeps one of zeros for a queue it knew)
    got = [s for s in broker.queue_stats() if s.waiting or s.scheduled or s.running]
    want = direct_queue_stats(jobs, clock.now())
    assert [(s.queue, s.waiting, s.scheduled, s.running) for s in got] == [
        (s.queue, s.waiting, s.scheduled, s.running) for s in want
    ], step
    for g, w in zip(got, want, strict=True):
        assert g.oldest_age == pytest.approx(w.oldest_age, abs=0.01), step


def new(queue: str = "qa", **kw: object) -> NewJob:
    return NewJob(task="t", queue=queue, **kw)  # type: ignore[arg-type]


def claim(broker: Broker, limit: int = 10, worker: str = "w1") -> list[Job]:
    return broker.claim(worker, QUEUES, limit, LEASE).jobs


def ok(job: Job) -> Outcome:
    return Outcome(job.id, job.attempt, JobState.SUCCEEDED, result_json="1")


def test_the_counts_follow_every_change_of_state(broker: Broker, clock: ManualClock) -> None:
    check(broker, clock, "empty")
    broker.enqueue([new(), new(), new("qb"), new(max_attempts=1), new(idempotency_key="k")])
    broker.enqueue([new(run_at=clock.now() + 100), new("qb", run_at=clock.now() + 50)])
    check(broker, clock, "enqueue, some later")
    assert broker.enqueue([new(idempotency_key="k")])  # the holder back, nothing inserted
    check(broker, clock, "enqueue of a key taken")
    clock.advance(5)
    check(broker, clock, "the clock moves: oldest ages grow")
    a, b, c = claim(broker, 3)
    check(broker, clock, "claim")
    broker.heartbeat("w1", [Lease(a.id, a.attempt)], LEASE)
    check(broker, clock, "heartbeat")
    fail = ErrorInfo("E", "boom")
    assert broker.finish(
        [ok(a), Outcome(b.id, b.attempt, JobState.FAILED, error=fail, retry_at=clock.now() + 9)]
    ) == [True, True]
    check(broker, clock, "finish: succeeded, failed to retry later")
    assert broker.finish([ok(a)]) == [False]
    check(broker, clock, "a stale finish changes nothing")
    assert broker.release([Lease(c.id, c.attempt)]) == [True]
    check(broker, clock, "release")
    got, more = broker.finish_and_claim([], "w2", QUEUES, 2, LEASE)
    assert got == []
    check(broker, clock, "finish_and_claim, claim only")
    d, e = more.jobs
    died = Outcome(d.id, d.attempt, JobState.DEAD, error=fail)
    broker.finish_and_claim([died], "w2", QUEUES, 1, LEASE)
    check(broker, clock, "finish_and_claim: dead, and a claim")
    broker.cancel(e.id)  # running: asked to stop
    check(broker, clock, "cancel of a running job (a flag)")
    clock.advance(LEASE + 1)
    broker.reap()
    check(broker, clock, "reap: cancelled, requeued, dead")
    with pytest.raises(InvalidTransitionError):
        broker.cancel(a.id)
    check(broker, clock, "a cancel refused")
    pending = [j for j in jobs_of(broker) if j.state in PENDING]
    broker.cancel(pending[0].id)
    check(broker, clock, "cancel of a waiting job")
    dead = [j for j in jobs_of(broker) if j.state in (JobState.DEAD, JobState.CANCELLED)]
    broker.retry(dead[0].id)
    check(broker, clock, "retry by hand")
    broker.retry_matching(state=JobState.CANCELLED, limit=1000)
    check(broker, clock, "retry_matching")
    broker.cancel_matching(queue="qb", limit=1000)
    check(broker, clock, "cancel_matching of one queue")
    broker.cancel_matching(limit=1000)
    check(broker, clock, "cancel_matching: the waiting ones end, the running ones are flagged")
    while running := claim(broker, 10):
        broker.finish([ok(j) for j in running])
    clock.advance(LEASE + 1)
    broker.reap()
    check(broker, clock, "everything ended")
    clock.advance(100)
    assert broker.prune(clock.now() - 10, limit=2) == 2
    check(broker, clock, "prune, limited")
    broker.prune(clock.now() - 10)
    check(broker, clock, "prune")
    assert broker.count_by_state() == {}


def test_the_counts_follow_pipelines(broker: Broker, clock: ManualClock) -> None:
    def step(name: str, ups: Sequence[str]) -> NewStep:
        job = NewJob(task=name, queue="qa", max_attempts=1)
        return NewStep(name, job, tuple(ups))

    steps = (step("a", []), step("b", ["a"]), step("c", ["b"]), step("d", []))
    run = broker.create_run(NewRun("p", "p:1", "{}", steps))
    check(broker, clock, "create_run: roots queued, the others blocked (later)")
    got = {j.task: j for j in claim(broker)}
    check(broker, clock, "claim of the roots")
    broker.finish([ok(got["a"])])
    check(broker, clock, "an upstream succeeds: its downstream is released")
    [b] = claim(broker)
    broker.finish([Outcome(b.id, b.attempt, JobState.DEAD, error=ErrorInfo("E", "x"))])
    check(broker, clock, "an upstream dies: its downstream is skipped (cancelled)")
    broker.cancel_run(run.id)
    check(broker, clock, "cancel_run")
    clock.advance(LEASE + 1)
    broker.reap()
    broker.retry_run(run.id)
    check(broker, clock, "retry_run")


def test_the_counts_follow_schedules(broker: Broker, clock: ManualClock) -> None:
    fired = broker.fire_schedule("nightly", 1000.0, [new(), new("qb")])
    assert fired is not None and len(fired) == 2
    check(broker, clock, "a schedule fires")
    assert broker.fire_schedule("nightly", 1000.0, [new()]) is None
    check(broker, clock, "the same tick again inserts nothing")


def test_a_refused_bulk_enqueue_counts_nothing(broker: Broker, clock: ManualClock) -> None:
    broker.enqueue([new()])
    with pytest.raises(ConfigError):
        broker.enqueue([new(), new(max_attempts=0)])
    check(broker, clock, "a refused batch")


def test_concurrent_finishes_are_all_counted(
    backend: Backend, broker: Broker, clock: ManualClock
) -> None:
    """Workers on connections of their own finishing and claiming at the same time (on
    PostgreSQL each writes its own shard of the counters)."""
    width, rounds = 4, 5
    broker.enqueue([new(QUEUES[i % 2]) for i in range(width * rounds * 2)])
    brokers = [broker if backend.url is None else backend.open(clock) for _ in range(width)]
    held = [claim(b, 2, f"w{i}") for i, b in enumerate(brokers)]
    barrier = threading.Barrier(width)
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            for _ in range(rounds):
                barrier.wait()
                _, more = brokers[i].finish_and_claim(
                    [ok(j) for j in held[i]], f"w{i}", QUEUES, 2, LEASE
                )
                held[i] = more.jobs
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(width)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    check(broker, clock, "after concurrent finishes")
    for b in brokers:
        if b is not broker:
            b.close()
    check(broker, clock, "after their connections closed")
    clock.advance(1)
    broker.prune(clock.now() - 3600)  # PostgreSQL folds the closed connections' shards
    check(broker, clock, "after prune")


@only("sqlite", "redis")
def test_a_buried_job_is_counted_dead(backend: Backend, broker: Broker, clock: ManualClock) -> None:
    first, bad = broker.enqueue([new(), new()])
    corrupt(backend, bad.id, "attempt", "abc")
    claimed = claim(broker)
    assert [j.id for j in claimed] == [first.id]
    assert_buried(broker, bad.id, "attempt", "abc")
    check(broker, clock, "a damaged job buried")
