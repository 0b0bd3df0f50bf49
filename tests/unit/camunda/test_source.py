"""The Camunda adapter of the worker runtime (faena.camunda.client.source), over a fake engine:
each call of the runtime becomes the right REST call, and the runtime's failure rule gives
Camunda's retries."""

from __future__ import annotations

import json
import random
from collections.abc import Mapping
from typing import Any

import httpx
import pytest

from faena.camunda.client.engine import EngineError
from faena.camunda.client.jobs import BpmnErrorRaised, failure_message, job_of, task_function
from faena.camunda.client.source import CamundaSource
from faena.camunda.client.subscription import subscription
from faena.camunda.client.task import BpmnError, ExternalTask
from faena.core.clock import ManualClock
from faena.core.job import ErrorInfo, Lease, Outcome
from faena.core.outcomes import decide
from faena.core.states import JobState
from faena.errors import BrokerError


class FakeEngine:
    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.tasks: list[dict[str, Any]] = []
        self.fail: dict[str, Exception] = {}  # method name -> what it raises

    def _record(self, name: str, *args: Any) -> None:
        self.calls.append((name, *args))
        exc = self.fail.get(name)
        if exc is not None:
            raise exc

    def fetch_and_lock(self, body: Mapping[str, Any], read_timeout: float) -> list[dict[str, Any]]:
        self._record("fetch", dict(body))
        out, self.tasks = self.tasks[: body["maxTasks"]], self.tasks[body["maxTasks"] :]
        return out

    def complete(self, task_id: str, worker: str, variables: Mapping[str, Any]) -> None:
        self._record("complete", task_id, worker, dict(variables))

    def failure(
        self, task_id: str, worker: str, message: str, details: str, retries: int, ms: int
    ) -> None:
        self._record("failure", task_id, worker, message, retries, ms)

    def bpmn_error(
        self, task_id: str, worker: str, code: str, message: str | None, variables: Any
    ) -> None:
        self._record("bpmn", task_id, worker, code, message, dict(variables))

    def extend_lock(self, task_id: str, worker: str, duration_ms: int) -> None:
        self._record("extend", task_id, worker, duration_ms)

    def unlock(self, task_id: str) -> None:
        self._record("unlock", task_id)


def handler(task: Any) -> None:
    return None


SUB = subscription(
    "orders",
    handler,
    lock_ms=9000,
    variables=None,
    retries=3,
    backoff_base=1.0,
    backoff_cap=300.0,
    retry_on=None,
    business_key=None,
    process_definition_key=None,
    process_variables=None,
)


def task(task_id: str, retries: int | None = None, topic: str = "orders") -> dict[str, Any]:
    return {"id": task_id, "topicName": topic, "workerId": "w1", "retries": retries}


def source(engine: FakeEngine, clock: ManualClock | None = None) -> CamundaSource:
    return CamundaSource(
        engine, {"orders": SUB}, poll_ms=lambda: 20_000, clock=clock or ManualClock()
    )


def test_a_claim_is_a_fetch_and_lock_for_the_free_slots() -> None:
    engine = FakeEngine()
    engine.tasks = [task("t1"), task("t2")]
    got = source(engine).claim("w1", ["orders"], 5, 30.0)
    assert [j.id for j in got.jobs] == ["t1", "t2"]
    ((name, body),) = engine.calls
    assert name == "fetch" and body["maxTasks"] == 5 and body["asyncResponseTimeout"] == 20_000
    assert body["topics"][0]["topicName"] == "orders" and body["topics"][0]["lockDuration"] == 9000
    assert json.loads(got.jobs[0].args_json)[0]["id"] == "t1", "the task's JSON is the argument"


def test_no_free_slot_no_call() -> None:
    engine = FakeEngine()
    assert source(engine).claim("w1", ["orders"], 0, 30.0).jobs == []
    assert engine.calls == []


def test_a_task_of_a_topic_not_subscribed_is_unlocked() -> None:
    engine = FakeEngine()
    engine.tasks = [task("t1", topic="other")]
    assert source(engine).claim("w1", ["orders"], 1, 30.0).jobs == []
    assert engine.calls[-1] == ("unlock", "t1")


@pytest.mark.parametrize(
    ("engine_retries", "tries", "left"), [(None, 1, 3), (3, 2, 2), (1, 4, 0), (10, 1, 9)]
)
def test_the_runtime_s_failure_rule_gives_camunda_s_retries(
    engine_retries: int | None, tries: int, left: int
) -> None:
    clock = ManualClock()
    job = job_of(task("t1", engine_retries), SUB, clock.now())
    assert (job.tries, job.max_attempts - job.tries) == (tries, left)
    out = decide(
        job,
        result_json=None,
        error=ErrorInfo("RuntimeError", "boom", "Traceback ..."),
        retryable=True,
        cancelled=False,
        policy=SUB.retry,
        now=clock.now(),
        rng=random.Random(1),
    )
    engine = FakeEngine()
    src = source(engine, clock)
    engine.tasks = [task("t1", engine_retries)]
    claimed = src.claim("w1", ["orders"], 1, 30.0).jobs[0]
    out = Outcome(claimed.id, claimed.attempt, out.state, error=out.error, retry_at=out.retry_at)
    assert src.finish([out]) == [True]
    name, task_id, worker, message, retries, ms = engine.calls[-1]
    assert (name, task_id, worker, retries) == ("failure", "t1", "w1", left)
    assert message == "RuntimeError: boom"
    assert (ms > 0) == (left > 0) and ms <= SUB.retry.ceiling(tries) * 1000


def test_success_completes_with_the_variables_and_a_kept_bpmn_error_is_sent_as_one() -> None:
    engine = FakeEngine()
    engine.tasks = [task("t1"), task("t2")]
    heard: list[str] = []
    src = CamundaSource(
        engine,
        {"orders": SUB},
        poll_ms=lambda: 1000,
        on_bpmn_error=lambda job, bpmn: heard.append(f"{job.id} {bpmn['code']}"),
    )
    a, b = src.claim("w1", ["orders"], 2, 30.0).jobs
    ok = json.dumps({"variables": {"x": {"type": "Integer", "value": 1}}})
    src.bpmn_errors["t2"] = {"code": "NO", "message": "why", "variables": {}}
    error = ErrorInfo("BpmnErrorRaised", "NO: why")
    done = [
        Outcome(a.id, a.attempt, JobState.SUCCEEDED, result_json=ok),
        Outcome(b.id, b.attempt, JobState.DEAD, error=error),
    ]
    assert src.finish(done) == [True, True]
    assert engine.calls[-2] == ("complete", "t1", "w1", {"x": {"type": "Integer", "value": 1}})
    assert engine.calls[-1] == ("bpmn", "t2", "w1", "NO", "why", {})
    assert heard == ["t2 NO"] and src.bpmn_errors == {}
    assert src.finish(done) == [False, False], "a lease finished already is not this worker's"


def test_a_lost_lock_is_a_stale_report_and_a_transient_error_a_broker_error() -> None:
    engine = FakeEngine()
    engine.tasks = [task("t1"), task("t2")]
    src = source(engine)
    a, b = src.claim("w1", ["orders"], 2, 30.0).jobs
    engine.fail["complete"] = EngineError(404, None, "gone", None)
    assert src.finish([Outcome(a.id, a.attempt, JobState.SUCCEEDED)]) == [False]
    engine.fail["complete"] = httpx.ConnectError("refused")
    with pytest.raises(BrokerError, match="could not be reached"):
        src.finish([Outcome(b.id, b.attempt, JobState.SUCCEEDED)])
    del engine.fail["complete"]
    assert src.finish([Outcome(b.id, b.attempt, JobState.SUCCEEDED)]) == [True], "sent again"


def test_a_heartbeat_extends_each_lock_and_names_the_lost_ones() -> None:
    engine = FakeEngine()
    engine.tasks = [task("t1"), task("t2")]
    src = source(engine)
    a, b = src.claim("w1", ["orders"], 2, 30.0).jobs
    engine.fail["extend"] = EngineError(400, None, "locked by another worker", None)
    result = src.heartbeat("w1", [Lease(a.id, a.attempt)], 9.0)
    assert result.lost == {"t1"} and engine.calls[-1] == ("extend", "t1", "w1", 9000)
    engine.fail["extend"] = httpx.ReadTimeout("slow")
    with pytest.raises(BrokerError):
        src.heartbeat("w1", [Lease(b.id, b.attempt)], 9.0)


def test_a_release_unlocks_and_nothing_is_reaped() -> None:
    engine = FakeEngine()
    engine.tasks = [task("t1")]
    src = source(engine)
    (a,) = src.claim("w1", ["orders"], 1, 30.0).jobs
    assert src.release([Lease(a.id, a.attempt), Lease("nope", 1)]) == [True, False]
    assert engine.calls[-1] == ("unlock", "t1")
    assert src.reap() == [] and src.next_run_at(["orders"]) is None


def test_a_task_that_cannot_be_read_is_given_back() -> None:
    engine = FakeEngine()
    engine.tasks = [{"id": "t1", "topicName": "orders", "variables": {"x": {"type": "Nope"}}}]
    bad: list[str] = []
    src = CamundaSource(
        engine, {"orders": SUB}, poll_ms=lambda: 1000, on_bad_task=lambda i, e: bad.append(i)
    )
    assert src.claim("w1", ["orders"], 1, 30.0).jobs == [] and bad == ["t1"]
    assert engine.calls[-1] == ("unlock", "t1")


def sub_of(fn: Any) -> Any:
    from dataclasses import replace

    return replace(SUB, handler=fn)


def test_the_task_function_turns_a_handler_s_ends_into_what_finish_sends() -> None:
    raw = {"id": "t1", "topicName": "orders", "variables": {"n": {"type": "Integer", "value": 2}}}

    def double(task: ExternalTask) -> dict[str, Any]:
        return {"doubled": task.get_variable("n") * 2}

    def refuse(task: ExternalTask) -> None:
        raise BpmnError("NO", "why", {"n": 1})

    def wrong(task: ExternalTask) -> Any:
        return [1]

    kept: dict[str, dict[str, Any]] = {}
    out = task_function(sub_of(double), kept)(raw)
    assert list(out) == ["variables"] and out["variables"]["doubled"]["value"] == 4
    with pytest.raises(BpmnErrorRaised):
        task_function(sub_of(refuse), kept)(raw)
    bpmn = kept["t1"]
    assert (bpmn["code"], bpmn["message"], bpmn["variables"]["n"]["value"]) == ("NO", "why", 1)
    assert not SUB.retry_on or not issubclass(BpmnErrorRaised, SUB.retry_on), "never retried"
    with pytest.raises(TypeError, match="return a dict of output variables or None"):
        task_function(sub_of(wrong), kept)(raw)


def test_an_exception_the_subscription_does_not_retry_goes_to_an_incident() -> None:
    engine = FakeEngine()
    engine.tasks = [task("t1", 3)]
    src = source(engine)
    (job,) = src.claim("w1", ["orders"], 1, 30.0).jobs
    error = ErrorInfo("ValueError", "bad input", "Traceback ...")
    out = decide(
        job, result_json=None, error=error, retryable=False, cancelled=False,
        policy=SUB.retry, now=0.0,
    )  # fmt: skip
    assert src.finish([out]) == [True]
    assert engine.calls[-1] == ("failure", "t1", "w1", "ValueError: bad input", 0, 0)


def test_the_message_is_cut_where_camunda_cuts_it() -> None:
    text = failure_message(ErrorInfo("RuntimeError", "x" * 2000))
    assert len(text) == 666 and text.startswith("RuntimeError: xxx")
    assert failure_message(ErrorInfo("RuntimeError", "")) == "RuntimeError"


def test_a_lock_that_may_be_another_worker_s_is_never_unlocked() -> None:
    clock = ManualClock()
    engine = FakeEngine()
    engine.tasks = [task("t1"), task("t2"), task("t3")]
    src = source(engine, clock)
    a, b, c = src.claim("w1", ["orders"], 3, 30.0).jobs
    engine.fail["extend"] = EngineError(400, None, "locked by another worker", None)
    assert src.heartbeat("w1", [Lease(a.id, a.attempt)], 9.0).lost == {"t1"}
    assert src.release([Lease(a.id, a.attempt)]) == [False], "lost: not unlocked"
    clock.advance(SUB.lock_ms / 1000)  # t2's and t3's locks ran out unrenewed
    assert src.release([Lease(b.id, b.attempt)]) == [False]
    assert src.finish([Outcome(c.id, c.attempt, JobState.CANCELLED)]) == [False]
    assert not [call for call in engine.calls if call[0] == "unlock"]


def test_a_turn_that_reports_takes_what_is_there_and_only_an_idle_claim_long_polls() -> None:
    engine = FakeEngine()
    engine.tasks = [task("t1"), task("t2")]
    src = source(engine)
    (a,) = src.claim("w1", ["orders"], 1, 30.0).jobs
    accepted, claim = src.finish_and_claim(
        [Outcome(a.id, a.attempt, JobState.SUCCEEDED)], "w1", ["orders"], 1, 30.0
    )
    assert accepted == [True] and [j.id for j in claim.jobs] == ["t2"]
    fetches = [call[1] for call in engine.calls if call[0] == "fetch"]
    assert fetches[0]["asyncResponseTimeout"] == 20_000
    assert "asyncResponseTimeout" not in fetches[1], "no long poll on a slot's turn"
