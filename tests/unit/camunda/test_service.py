"""The external-task operations on the memory broker, with time moved by hand."""

from __future__ import annotations

from typing import Any

import pytest

from faena.brokers.memory import MemoryBroker
from faena.camunda.errors import RestError
from faena.camunda.server import query
from faena.camunda.server import requests as rq
from faena.camunda.server.service import ExternalTaskService
from faena.camunda.server.tasks import BPMN_ERROR
from faena.core.clock import ManualClock
from faena.core.job import NewJob
from faena.core.states import JobState


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def svc(clock: ManualClock) -> ExternalTaskService:
    broker = MemoryBroker(clock=clock)
    broker.setup()
    return ExternalTaskService(broker, clock=clock)


def add(svc: ExternalTaskService, topic: str = "t", **kwargs: Any) -> str:
    import json

    [job] = svc.broker.enqueue([NewJob(task="order", queue=topic, kwargs_json=json.dumps(kwargs))])
    return job.id


def fetch(
    svc: ExternalTaskService, worker: str = "w", lock_ms: int = 10_000, **topic: Any
) -> list[dict[str, Any]]:
    body = {
        "workerId": worker,
        "maxTasks": 10,
        "topics": [{"topicName": "t", "lockDuration": lock_ms, **topic}],
    }
    return [dto for _, dto in svc.fetch(rq.fetch_request(body))]


def test_fresh_tasks_have_null_retries_then_count_down(
    svc: ExternalTaskService, clock: ManualClock
) -> None:
    task_id = add(svc, n=1)
    [task] = fetch(svc)
    assert task["retries"] is None and task["variables"]["n"]["type"] == "Integer"
    svc.failure(
        task_id,
        {
            "workerId": "w",
            "retries": 2,
            "retryTimeout": 5000,
            "errorMessage": "x" * 1000,
            "errorDetails": "trace",
        },
    )
    assert fetch(svc) == []  # waiting for retryTimeout, shown as a lock
    assert svc.get(task_id)["lockExpirationTime"] is not None
    clock.advance(5)
    [again] = fetch(svc)
    assert again["retries"] == 2 and len(again["errorMessage"]) == 666
    assert svc.error_details(task_id) == "trace"
    svc.failure(task_id, {"workerId": "w"})  # missing retries means 0: an incident
    assert svc.get(task_id)["retries"] == 0
    assert svc.count(query.parse({"noRetriesLeft": "true"})) == 1
    clock.advance(60)
    assert fetch(svc) == []
    svc.set_retries(task_id, 3)  # revives it
    assert [t["id"] for t in fetch(svc)] == [task_id]


def test_lock_expiry_extend_and_ownership(svc: ExternalTaskService, clock: ManualClock) -> None:
    task_id = add(svc)
    fetch(svc, worker="a", lock_ms=3000)
    clock.advance(2)
    svc.extend_lock(task_id, {"workerId": "a", "newDuration": 3000})  # now + 3 s
    clock.advance(2)
    assert fetch(svc, worker="b") == []
    clock.advance(2)
    with pytest.raises(RestError, match="Cannot extend a lock that expired"):
        svc.extend_lock(task_id, {"workerId": "a", "newDuration": 3000})
    assert [t["workerId"] for t in fetch(svc, worker="b")] == ["b"]
    with pytest.raises(RestError, match="It is locked by worker 'b'") as err:
        svc.complete(task_id, {"workerId": "a"})
    assert err.value.status == 400
    svc.complete(task_id, {"workerId": "b", "variables": {"x": {"value": 1, "type": "Long"}}})
    job = svc.broker.get(task_id)
    assert job is not None and job.state is JobState.SUCCEEDED and job.result == {"x": 1}
    with pytest.raises(RestError) as gone:
        svc.get(task_id)
    assert gone.value.status == 404


def test_unlock_and_targeted_lock(svc: ExternalTaskService) -> None:
    first, second = add(svc), add(svc)
    fetch(svc, worker="a")
    svc.unlock(first)
    assert svc.get(first)["workerId"] is None
    svc.unlock(second)
    svc.lock(second, {"workerId": "z", "lockDuration": 1000})
    assert svc.get(second)["workerId"] == "z" and svc.get(first)["workerId"] is None
    with pytest.raises(RestError, match="locked by worker 'z'"):
        svc.lock(second, {"workerId": "y", "lockDuration": 1000})
    with pytest.raises(RestError, match="It is locked by worker 'null'"):
        svc.complete(first, {"workerId": "a"})


def test_bpmn_error_is_a_distinct_terminal_outcome(svc: ExternalTaskService) -> None:
    task_id = add(svc)
    fetch(svc)
    svc.bpmn_error(
        task_id,
        {
            "workerId": "w",
            "errorCode": "E1",
            "errorMessage": "no",
            "variables": {"v": {"value": "x", "type": "String"}},
        },
    )
    job = svc.broker.get(task_id)
    assert job is not None and job.state is JobState.DEAD
    assert job.error is not None and job.error.type == BPMN_ERROR
    assert job.result == {"errorCode": "E1", "errorMessage": "no", "variables": {"v": "x"}}
    assert svc.count(query.TaskQuery()) == 0


def test_topic_filters_leave_other_tasks_in_line(svc: ExternalTaskService) -> None:
    add(svc, region="eu")
    us = add(svc, region="us")
    assert [t["id"] for t in fetch(svc, processVariables={"region": "us"})] == [us]
    assert len(fetch(svc, worker="other")) == 1  # the eu task was given back


def test_queries(svc: ExternalTaskService, clock: ManualClock) -> None:
    ids = [add(svc, n=i) for i in range(3)]
    fetch(svc, worker="a", lock_ms=10_000)
    svc.unlock(ids[2])
    assert svc.count(query.parse({"locked": "true"})) == 2
    assert svc.count(query.parse({"notLocked": True, "workerId": None})) == 1
    assert svc.count(query.parse({"processVariables": "n_gteq_1"})) == 2
    assert (
        svc.count(query.parse({"processVariables": [{"name": "n", "operator": "eq", "value": 0}]}))
        == 1
    )
    page = svc.query(query.parse({"sortBy": "id", "sortOrder": "desc", "maxResults": "2"}))
    assert [t["id"] for t in page] == sorted(ids, reverse=True)[:2]
    assert svc.count(query.parse({"externalTaskIdIn": ",".join(ids[:2])})) == 2
    assert svc.count(query.parse({"tenantIdIn": "acme"})) == 0
    with pytest.raises(RestError):
        query.parse({"sortOrder": "asc"})


@pytest.mark.parametrize(
    "body",
    [
        None,
        {"maxTasks": 1, "topics": []},
        {"workerId": "w", "maxTasks": 1, "topics": [{"topicName": "t"}]},
        {"workerId": "w", "maxTasks": 1, "asyncResponseTimeout": -1, "topics": []},
        {"workerId": "w", "maxTasks": 1, "topics": {"topicName": "t"}},
    ],
)
def test_bad_fetch_requests(body: Any) -> None:
    with pytest.raises(RestError) as err:
        rq.fetch_request(body)
    assert err.value.status == 400


def test_numeric_worker_ids_are_strings(svc: ExternalTaskService) -> None:
    task_id = add(svc)
    body = {"workerId": 1, "maxTasks": 1, "topics": [{"topicName": "t", "lockDuration": 100}]}
    [task] = [dto for _, dto in svc.fetch(rq.fetch_request(body))]
    assert task["workerId"] == "1"
    svc.complete(task_id, {"workerId": 1})
