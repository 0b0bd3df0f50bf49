"""Pipeline runs on every backend: one atomic create, the hand-off in the same atomic step as
the upstream's end, trigger rules, fan-in under concurrent finishes, cancel, retry, keys."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Sequence
from typing import TypeVar

import pytest

from faena.brokers.protocol import Broker
from faena.core.clock import ManualClock
from faena.core.dependencies import BLOCKED_AT, SKIPPED, RunState, TriggerRule
from faena.core.job import ErrorInfo, Job, NewJob, Outcome
from faena.core.runs import NewRun, NewStep, RunRecord
from faena.core.states import JobState
from faena.errors import ConfigError, JobNotFoundError
from tests.contract.conftest import Backend

LEASE = 30.0
T = TypeVar("T")
Q = ["etl"]

Spec = (
    tuple[str, Sequence[str]]
    | tuple[str, Sequence[str], TriggerRule]
    | tuple[str, Sequence[str], TriggerRule, bool]
)


def make_run(specs: Sequence[Spec], key: str = "k", attempts: int = 1, **job: object) -> NewRun:
    steps = []
    for spec in specs:
        name, ups = spec[0], tuple(spec[1])
        rule = spec[2] if len(spec) > 2 else TriggerRule.ALL_SUCCESS  # type: ignore[misc]
        results = bool(spec[3]) if len(spec) > 3 else False  # type: ignore[misc]
        new = NewJob(task=name, queue="etl", max_attempts=attempts, **job)  # type: ignore[arg-type]
        steps.append(NewStep(name, new, ups, rule, results))
    return NewRun("etl_daily", f"etl_daily:{key}", '{"day":"2026-11-27"}', tuple(steps))


def claim(broker: Broker, limit: int = 50) -> dict[str, Job]:
    return {j.task: j for j in broker.claim("w1", Q, limit, LEASE).jobs}


def ok(job: Job, result: str = "1") -> Outcome:
    return Outcome(job.id, job.attempt, JobState.SUCCEEDED, result_json=result)


def dead(job: Job) -> Outcome:
    return Outcome(job.id, job.attempt, JobState.DEAD, error=ErrorInfo("ValueError", "bad"))


def states(broker: Broker, run: RunRecord) -> dict[str, JobState | None]:
    got = broker.get_run(run.id)
    assert got is not None
    return {s.name: s.state for s in got.steps}


def at_once(
    backend: Backend,
    broker: Broker,
    clock: ManualClock,
    width: int,
    call: Callable[[Broker, int], T],
) -> list[T]:
    """``call(b, i)`` for i in range(width), each on a thread of its own and, on a backend
    with connections, a broker of its own, all released together; their results, in order."""
    brokers = [broker if backend.url is None else backend.open(clock) for _ in range(width)]
    barrier = threading.Barrier(width)
    results: list[T | None] = [None] * width
    errors: list[BaseException] = []

    def one(i: int) -> None:
        try:
            barrier.wait()
            results[i] = call(brokers[i], i)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(width)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for b in brokers:
        if b is not broker:
            b.close()
    assert errors == []
    return [r for r in results if r is not None]


def test_create_run_inserts_every_step_and_only_roots_run(broker: Broker) -> None:
    run = broker.create_run(make_run([("a", []), ("b", ["a"]), ("c", ["a"]), ("d", ["b", "c"])]))
    assert run.created and run.pipeline == "etl_daily" and run.state is RunState.RUNNING
    assert [s.name for s in run.steps] == ["a", "b", "c", "d"]
    assert run.step("d").upstreams == ("b", "c")
    assert states(broker, run) == {
        "a": JobState.QUEUED,
        "b": JobState.SCHEDULED,
        "c": JobState.SCHEDULED,
        "d": JobState.SCHEDULED,
    }
    blocked = broker.get(run.step("b").job_id)
    assert blocked is not None and blocked.run_at == BLOCKED_AT
    assert run.step("b").waiting and not run.step("a").waiting
    assert set(claim(broker)) == {"a"}
    assert claim(broker) == {}


def test_hand_off_happens_in_the_finish_that_ends_the_upstream(broker: Broker) -> None:
    run = broker.create_run(make_run([("a", []), ("b", ["a"]), ("c", ["b"])]))
    a = claim(broker)["a"]
    done, result = broker.finish_and_claim([ok(a)], "w1", Q, 10, LEASE)
    assert done == [True]
    assert [j.task for j in result.jobs] == ["b"]  # released and claimed in the same call
    [b] = result.jobs
    assert broker.finish([ok(b)]) == [True]
    c = claim(broker)["c"]
    assert broker.finish([ok(c)]) == [True]
    got = broker.get_run(run.id)
    assert got is not None and got.state is RunState.SUCCEEDED
    assert got.finished_at is not None


def test_a_stale_finish_hands_off_nothing(broker: Broker) -> None:
    broker.create_run(make_run([("a", []), ("b", ["a"])]))
    a = claim(broker)["a"]
    stale = Outcome(a.id, a.attempt + 1, JobState.SUCCEEDED, result_json="1")
    assert broker.finish([stale]) == [False]
    assert claim(broker) == {}


def test_all_success_skips_after_a_dead_upstream_and_the_skip_cascades(broker: Broker) -> None:
    run = broker.create_run(
        make_run(
            [
                ("a", []),
                ("b", ["a"]),
                ("c", ["b"]),
                ("cleanup", ["c"], TriggerRule.ALL_DONE),
                ("alert", ["b"], TriggerRule.ONE_FAILED),
            ]
        )
    )
    a = claim(broker)["a"]
    assert broker.finish([dead(a)]) == [True]
    got = broker.get_run(run.id)
    assert got is not None
    assert got.step("b").state is JobState.CANCELLED and got.step("b").error_type == SKIPPED
    assert got.step("c").state is JobState.CANCELLED
    # all_done runs after its upstream was skipped; one_failed counts a skipped upstream
    assert set(claim(broker)) == {"cleanup", "alert"}
    assert got.state is RunState.RUNNING


def test_one_failed_is_skipped_when_every_upstream_succeeds(broker: Broker) -> None:
    run = broker.create_run(
        make_run([("a", []), ("b", []), ("alert", ["a", "b"], TriggerRule.ONE_FAILED)])
    )
    jobs = claim(broker)
    assert broker.finish([ok(jobs["a"]), ok(jobs["b"])]) == [True, True]
    got = broker.get_run(run.id)
    assert got is not None and got.step("alert").state is JobState.CANCELLED
    assert got.step("alert").error_type == SKIPPED
    assert got.state is RunState.SUCCEEDED  # a rule not met is no failure


def test_one_failed_runs_as_soon_as_one_upstream_fails(broker: Broker) -> None:
    broker.create_run(
        make_run([("a", []), ("b", []), ("alert", ["a", "b"], TriggerRule.ONE_FAILED)])
    )
    jobs = claim(broker)
    assert broker.finish([dead(jobs["a"])]) == [True]
    assert set(claim(broker)) == {"alert"}  # b still runs


def test_all_done_waits_for_every_upstream(broker: Broker) -> None:
    run = broker.create_run(
        make_run([("a", []), ("b", []), ("c", ["a", "b"], TriggerRule.ALL_DONE)])
    )
    jobs = claim(broker)
    broker.finish([dead(jobs["a"])])
    assert claim(broker) == {}
    broker.finish([ok(jobs["b"])])
    got = broker.get_run(run.id)
    assert got is not None and not got.step("c").waiting  # released: due
    assert set(claim(broker)) == {"c"}


def test_a_failed_step_fails_the_run_only_after_its_retries(
    broker: Broker, clock: ManualClock
) -> None:
    run = broker.create_run(make_run([("a", []), ("b", ["a"])], attempts=2))
    a = claim(broker)["a"]
    retry = Outcome(a.id, a.attempt, JobState.FAILED, error=ErrorInfo("E", "m"), retry_at=0)
    assert broker.finish([retry]) == [True]
    got = broker.get_run(run.id)
    assert got is not None and got.state is RunState.RUNNING
    assert got.step("b").state is JobState.SCHEDULED  # still waiting
    a2 = claim(broker)["a"]
    assert a2.attempt == 2
    broker.finish([dead(a2)])
    got = broker.get_run(run.id)
    assert got is not None and got.state is RunState.FAILED
    assert got.step("b").state is JobState.CANCELLED


def test_fan_in_released_exactly_once_when_upstreams_finish_at_once(
    backend: Backend, broker: Broker, clock: ManualClock
) -> None:
    width = 8
    specs: list[Spec] = [(f"u{i}", []) for i in range(width)]
    specs.append(("join", [f"u{i}" for i in range(width)]))
    run = broker.create_run(make_run(specs))
    ups = claim(broker)
    assert len(ups) == width
    claimed = at_once(
        backend,
        broker,
        clock,
        width,
        lambda b, i: b.finish_and_claim([ok(ups[f"u{i}"])], f"w{i}", Q, 5, LEASE)[1].jobs,
    )
    got = [j for jobs in claimed for j in jobs] + list(claim(broker).values())
    assert [j.task for j in got] == ["join"]
    assert got[0].attempt == 1
    assert states(broker, run)["join"] is JobState.RUNNING


def test_cancel_run_cancels_pending_steps_and_flags_running_ones(broker: Broker) -> None:
    run = broker.create_run(make_run([("a", []), ("b", []), ("c", ["a", "b"])]))
    jobs = claim(broker, limit=1)
    [running] = jobs.values()
    got = broker.cancel_run(run.id)
    by_name = {s.name: s.state for s in got.steps}
    assert by_name[running.task] is JobState.RUNNING
    assert [s for n, s in by_name.items() if n != running.task] == [JobState.CANCELLED] * 2
    hb = broker.heartbeat("w1", [Outcome(running.id, running.attempt, JobState.RUNNING).lease], 30)
    assert running.id in hb.cancel
    broker.finish([Outcome(running.id, running.attempt, JobState.CANCELLED)])
    final = broker.get_run(run.id)
    assert final is not None and final.state is RunState.CANCELLED
    assert claim(broker) == {}


def test_retry_run_reruns_failed_and_skipped_steps_and_keeps_succeeded(broker: Broker) -> None:
    run = broker.create_run(
        make_run([("a", []), ("b", ["a"]), ("c", ["b"]), ("d", ["a"]), ("e", ["c", "d"])])
    )
    a = claim(broker)["a"]
    broker.finish([ok(a)])
    jobs = claim(broker)
    broker.finish([dead(jobs["b"]), ok(jobs["d"])])
    got = broker.get_run(run.id)
    assert got is not None and got.state is RunState.FAILED
    retried = broker.retry_run(run.id)
    assert retried.state is RunState.RUNNING
    assert {s.name: s.state for s in retried.steps} == {
        "a": JobState.SUCCEEDED,
        "b": JobState.QUEUED,
        "c": JobState.SCHEDULED,
        "d": JobState.SUCCEEDED,
        "e": JobState.SCHEDULED,
    }
    b = claim(broker)["b"]
    assert b.attempt == 2 and b.tries == 1
    broker.finish([ok(b)])
    c = claim(broker)["c"]
    broker.finish([ok(c)])
    e = claim(broker)["e"]
    broker.finish([ok(e)])
    final = broker.get_run(run.id)
    assert final is not None and final.state is RunState.SUCCEEDED
    a_now = broker.get(a.id)
    assert a_now is not None and a_now.attempt == 1  # kept, not run again


def test_run_key_makes_a_run_once(broker: Broker) -> None:
    first = broker.create_run(make_run([("a", []), ("b", ["a"])], key="2026-11-27"))
    again = broker.create_run(make_run([("a", []), ("b", ["a"])], key="2026-11-27"))
    assert first.created and not again.created
    assert again.id == first.id
    assert [s.job_id for s in again.steps] == [s.job_id for s in first.steps]
    assert len(broker.list_jobs()) == 2
    # the key holds after the run ended
    a = claim(broker)["a"]
    broker.finish([dead(a)])
    third = broker.create_run(make_run([("a", []), ("b", ["a"])], key="2026-11-27"))
    assert not third.created and third.id == first.id
    other = broker.create_run(make_run([("a", []), ("b", ["a"])], key="2026-11-28"))
    assert other.created
    assert [r.id for r in broker.list_runs()] == [other.id, first.id]
    assert [r.id for r in broker.list_runs(pipeline="etl_daily", limit=1)] == [other.id]
    assert broker.list_runs(pipeline="nope") == []


def test_results_are_passed_to_steps_that_take_them(broker: Broker) -> None:
    broker.create_run(
        make_run(
            [("a", []), ("b", []), ("c", ["a", "b"], TriggerRule.ALL_SUCCESS, True)],
            kwargs_json='{"day":"2026-11-27"}',
        )
    )
    jobs = claim(broker)
    broker.finish([ok(jobs["a"], '{"rows":10}'), ok(jobs["b"], "null")])
    c = claim(broker)["c"]
    assert c.kwargs == {"day": "2026-11-27", "upstream": {"a": {"rows": 10}, "b": None}}


def test_a_step_whose_lease_is_lost_runs_again_then_hands_off(
    broker: Broker, clock: ManualClock
) -> None:
    run = broker.create_run(make_run([("a", []), ("b", ["a"])], attempts=2))
    a = claim(broker)["a"]
    clock.advance(LEASE + 1)
    reaped = broker.reap()
    assert [r.new_state for r in reaped] == [JobState.QUEUED]
    assert states(broker, run)["b"] is JobState.SCHEDULED
    a2 = claim(broker)["a"]
    assert a2.attempt == 2
    assert broker.finish([ok(a)]) == [False]  # the presumed-dead worker's late report
    broker.finish([ok(a2)])
    assert set(claim(broker)) == {"b"}


def test_a_step_whose_last_lease_is_lost_skips_its_downstream(
    broker: Broker, clock: ManualClock
) -> None:
    run = broker.create_run(make_run([("a", []), ("b", ["a"])], attempts=1))
    claim(broker)
    clock.advance(LEASE + 1)
    assert [r.new_state for r in broker.reap()] == [JobState.DEAD]
    got = broker.get_run(run.id)
    assert got is not None and got.state is RunState.FAILED
    assert got.step("b").state is JobState.CANCELLED


def test_cancelling_one_pending_step_skips_its_downstream(broker: Broker) -> None:
    run = broker.create_run(make_run([("a", []), ("b", ["a"])]))
    broker.cancel(run.step("a").job_id)
    assert states(broker, run) == {"a": JobState.CANCELLED, "b": JobState.CANCELLED}


def test_bad_runs_are_refused_and_write_nothing(broker: Broker) -> None:
    with pytest.raises(ConfigError, match="not a step declared before it"):
        broker.create_run(make_run([("b", ["a"]), ("a", [])]))
    with pytest.raises(ConfigError, match="two steps named"):
        broker.create_run(make_run([("a", []), ("a", [])]))
    with pytest.raises(ConfigError, match="idempotency key"):
        broker.create_run(make_run([("a", [])], idempotency_key="x"))
    assert broker.list_jobs() == [] and broker.list_runs() == []
    with pytest.raises(JobNotFoundError, match="no pipeline run"):
        broker.retry_run("nope")
    with pytest.raises(JobNotFoundError, match="no pipeline run"):
        broker.cancel_run("nope")
    assert broker.get_run("nope") is None


def test_a_run_with_an_unknown_pool_writes_nothing(broker: Broker) -> None:
    from faena.errors import UnknownPoolError

    with pytest.raises(UnknownPoolError):
        broker.create_run(make_run([("a", []), ("b", ["a"])], pool="nowhere"))
    assert broker.list_jobs() == [] and broker.list_runs() == []


def test_params_are_kept(broker: Broker) -> None:
    run = broker.create_run(make_run([("a", [])]))
    got = broker.get_run(run.id)
    assert got is not None and json.loads(got.params_json) == {"day": "2026-11-27"}
    assert got.key == "etl_daily:k"


def test_an_upstream_retried_by_hand_is_waited_for_again(broker: Broker) -> None:
    run = broker.create_run(
        make_run([("a", []), ("b", []), ("c", ["a", "b"], TriggerRule.ALL_DONE)])
    )
    jobs = claim(broker)
    broker.finish([dead(jobs["a"])])
    broker.retry(jobs["a"].id)  # a runs again: c waits for it anew
    broker.finish([ok(jobs["b"])])
    got = broker.get_run(run.id)
    assert got is not None and got.step("c").waiting
    a2 = claim(broker)["a"]
    assert claim(broker) == {}
    broker.finish([ok(a2)])
    assert set(claim(broker)) == {"c"}


def test_a_step_run_again_by_the_runs_retry_gets_its_upstreams_results(broker: Broker) -> None:
    run = broker.create_run(
        make_run([("a", []), ("b", ["a"], TriggerRule.ALL_SUCCESS, True), ("c", ["b"])])
    )
    a = claim(broker)["a"]
    broker.cancel_run(run.id)  # b and c end while waiting; a is asked to stop...
    broker.finish([ok(a, '{"rows":7}')])  # ...but ends first, succeeded
    retried = broker.retry_run(run.id)
    assert [s.state for s in retried.steps] == [
        JobState.SUCCEEDED,
        JobState.QUEUED,
        JobState.SCHEDULED,
    ]
    b = claim(broker)["b"]
    assert b.kwargs == {"upstream": {"a": {"rows": 7}}}


def test_a_runs_end_is_noted_once_and_again_after_it_ends_again(
    broker: Broker, clock: ManualClock
) -> None:
    run = broker.create_run(make_run([("a", [])]))
    assert broker.note_run_ended("no-such-run", 1.0) is False
    a = claim(broker)["a"]
    clock.advance(3)
    broker.finish([dead(a)])
    ended = broker.get_run(run.id)
    assert ended is not None and ended.finished_at is not None
    assert broker.note_run_ended(run.id, ended.finished_at) is True
    assert broker.note_run_ended(run.id, ended.finished_at) is False  # noted already
    broker.retry_run(run.id)
    clock.advance(5)
    broker.finish([ok(claim(broker)["a"])])
    again = broker.get_run(run.id)
    assert again is not None and again.finished_at is not None
    assert again.finished_at > ended.finished_at
    assert broker.note_run_ended(run.id, again.finished_at) is True  # a new end
    assert broker.note_run_ended(run.id, again.finished_at) is False
    with pytest.raises(ConfigError, match="run id"):
        broker.note_run_ended("bad\x00id", 1.0)


def test_of_many_callers_noting_one_end_at_once_exactly_one_wins(
    backend: Backend, broker: Broker, clock: ManualClock
) -> None:
    run = broker.create_run(make_run([("a", [])]))
    broker.finish([ok(claim(broker)["a"])])
    ended = broker.get_run(run.id)
    assert ended is not None and ended.finished_at is not None
    at = ended.finished_at
    width = 6
    won = at_once(backend, broker, clock, width, lambda b, _: b.note_run_ended(run.id, at))
    assert sorted(won) == [False] * (width - 1) + [True]
