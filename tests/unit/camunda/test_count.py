"""``/external-task/count`` by topic alone reads the broker's counts, not every task: the
same answer as filtering every task, without decoding the pending and running jobs."""

from __future__ import annotations

from typing import Any

from faena.brokers.memory import MemoryBroker
from faena.camunda.server import query
from faena.camunda.server.service import ExternalTaskService
from faena.camunda.server.tasks import BPMN_ERROR
from faena.core.clock import ManualClock
from faena.core.job import ErrorInfo, NewJob, Outcome
from faena.core.states import JobState


class Listing(MemoryBroker):
    """The memory broker, recording the states that ``list_jobs`` was asked for."""

    def __init__(self, clock: ManualClock) -> None:
        super().__init__(clock=clock)
        self.listed: list[JobState | None] = []

    def list_jobs(self, **kw: Any) -> Any:
        self.listed.append(kw.get("state"))
        return super().list_jobs(**kw)


def test_count_by_topic_alone_agrees_with_the_filtered_count_and_lists_dead_jobs_only() -> None:
    clock = ManualClock()
    broker = Listing(clock)
    broker.setup()
    svc = ExternalTaskService(broker, clock=clock)
    broker.enqueue([NewJob(task="order", queue=q) for q in ["a"] * 6 + ["b"] * 4])  # type: ignore[arg-type]
    got = broker.claim("w", ["a"], 4, 30.0).jobs
    broker.finish(
        [
            Outcome(got[0].id, got[0].attempt, JobState.SUCCEEDED, result_json="1"),
            Outcome(got[1].id, got[1].attempt, JobState.DEAD, error=ErrorInfo("Failure", "x")),
            Outcome(got[2].id, got[2].attempt, JobState.DEAD, error=ErrorInfo(BPMN_ERROR, "E")),
        ]
    )
    broker.cancel(broker.list_jobs(queue="b", limit=1)[0].id)
    for params in ({"topicName": "a"}, {"topicName": "b"}, {"topicName": "none"}, {}):
        expected = len(svc.query(query.parse(params)))  # every task, filtered one by one
        broker.listed.clear()
        assert svc.count(query.parse(params, paging=False)) == expected, params
        assert set(broker.listed) <= {JobState.DEAD}, params
    # 2 queued, 1 running, 1 dead by a failure (an incident); the succeeded job and the one
    # ended by a BPMN error are no tasks
    assert svc.count(query.parse({"topicName": "a"}, paging=False)) == 4
    broker.listed.clear()
    assert svc.count(query.parse({"topicName": "a", "locked": "true"}, paging=False)) == 1
    assert JobState.RUNNING in broker.listed  # other criteria: every task is read
