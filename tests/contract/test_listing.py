"""``list_jobs`` and ``count_by_state`` agree on every backend, for every filter: the jobs
that match, newest first, paged by ``limit`` and ``offset``."""

from __future__ import annotations

import itertools

from faena.brokers.protocol import Broker
from faena.core.job import ErrorInfo, NewJob, Outcome
from faena.core.states import JobState

QUEUES = ["qa", "qb", "qc"]
TASKS = ["ta", "tb"]
LEASE = 30.0


def _fill(broker: Broker) -> list[str]:
    """Jobs of three queues and two tasks in every state a worker leaves; ids oldest first."""
    jobs = broker.enqueue(
        [NewJob(task=TASKS[i % 2], queue=QUEUES[i % 3]) for i in range(36)]  # type: ignore[arg-type]
    )
    running = broker.claim("w", ["qa", "qb"], 12, LEASE).jobs
    broker.finish(
        [Outcome(j.id, j.attempt, JobState.SUCCEEDED, result_json="1") for j in running[:4]]
        + [
            Outcome(j.id, j.attempt, JobState.DEAD, error=ErrorInfo("E", "boom"))
            for j in running[4:7]
        ]
    )
    for job in jobs[-5:]:
        broker.cancel(job.id)
    return [j.id for j in jobs]


def test_every_filter_lists_the_matching_jobs_newest_first(broker: Broker) -> None:
    ids = _fill(broker)
    stored = {i: broker.get(i) for i in ids}
    newest_first = list(reversed(ids))
    states: list[JobState | None] = [None, *JobState]
    for state, queue, task in itertools.product(states, [None, *QUEUES], [None, *TASKS]):
        want = [
            i
            for i in newest_first
            if (state is None or stored[i].state is state)  # type: ignore[union-attr]
            and (queue is None or stored[i].queue == queue)  # type: ignore[union-attr]
            and (task is None or stored[i].task == task)  # type: ignore[union-attr]
        ]
        for limit, offset in ((100, 0), (2, 0), (2, 1), (3, 4), (5, 40)):
            got = broker.list_jobs(state=state, queue=queue, task=task, limit=limit, offset=offset)
            assert [j.id for j in got] == want[offset : offset + limit], (state, queue, task)
    counts = broker.count_by_state()
    for queue, state in itertools.product(QUEUES, JobState):
        n = sum(1 for j in stored.values() if j and j.queue == queue and j.state is state)
        assert counts.get((queue, state), 0) == n, (queue, state)
