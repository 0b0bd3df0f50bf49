"""``list_jobs`` and ``count_by_state`` agree on every backend, for every filter: the jobs
that match, newest first, paged by ``limit`` and ``offset``; ``search_jobs`` adds a time range
and a text, and pages by cursor, stable while jobs move."""

from __future__ import annotations

import itertools
import json
from typing import Any

import pytest

from faena.brokers.protocol import Broker, JobSearch
from faena.core import search as searching
from faena.core.clock import ManualClock
from faena.core.job import ErrorInfo, Job, NewJob, Outcome
from faena.core.states import JobState
from faena.errors import ConfigError

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


# search_jobs: filters, time range, text, keyset cursors -----------------------------------


def _fill_for_search(broker: Broker, clock: ManualClock) -> list[str]:
    """Jobs a second apart, with words in their args, kwargs and errors; ids oldest first."""
    ids = []
    for i in range(18):
        new = NewJob(
            task=TASKS[i % 2],
            queue=QUEUES[i % 3],
            args_json=json.dumps([f"Order-{i}", i]),
            kwargs_json=json.dumps({"who": "Ada" if i % 4 == 0 else "Bob"}),
        )
        ids.append(broker.enqueue([new])[0].id)
        clock.advance(1.0)
    running = broker.claim("w", QUEUES, 6, LEASE).jobs
    broker.finish(
        [Outcome(j.id, j.attempt, JobState.SUCCEEDED, result_json="1") for j in running[:3]]
        + [
            Outcome(j.id, j.attempt, JobState.DEAD, error=ErrorInfo("E", "Disk FULL on node7"))
            for j in running[3:]
        ]
    )
    broker.cancel(ids[-1])
    return ids


def _all_pages(broker: Broker, search: JobSearch, limit: int) -> list[str]:
    got: list[str] = []
    cursor = None
    for _ in range(100):
        page = broker.search_jobs(search, limit=limit, cursor=cursor)
        assert len(page.jobs) <= limit
        got += [j.id for j in page.jobs]
        if page.next_cursor is None:
            return got
        cursor = page.next_cursor
    raise AssertionError("the pages never ended")


def test_search_finds_what_matches_every_filter_page_by_page(
    broker: Broker, clock: ManualClock
) -> None:
    start = clock.now()
    ids = _fill_for_search(broker, clock)
    stored = {i: broker.get(i) for i in ids}
    newest_first = list(reversed(ids))
    texts = [None, "ada", "ORDER-1", "disk full", "node7", '"who"', "nowhere"]
    ranges = [(None, None), (start + 3, None), (None, start + 10), (start + 2, start + 9)]
    states: list[JobState | None] = [None, JobState.QUEUED, JobState.DEAD, JobState.SUCCEEDED]
    for state, queue, text, (since, until) in itertools.product(
        states, [None, "qb"], texts, ranges
    ):
        search = JobSearch(state=state, queue=queue, text=text, since=since, until=until)
        want = [i for i in newest_first if _matches(stored[i], search)]
        for limit in (1, 3, 100):
            assert _all_pages(broker, search, limit) == want, (search, limit)
    by_task = JobSearch(task="tb", text="order-1")
    want = [i for i in newest_first if _matches(stored[i], by_task)]
    assert want and _all_pages(broker, by_task, 2) == want


def _matches(job: Job | None, search: JobSearch) -> bool:
    assert job is not None
    if search.state is not None and job.state is not search.state:
        return False
    if search.queue is not None and job.queue != search.queue:
        return False
    if search.task is not None and job.task != search.task:
        return False
    if search.since is not None and job.enqueued_at < search.since:
        return False
    if search.until is not None and job.enqueued_at >= search.until:
        return False
    if search.text is None:
        return True
    hay = [job.args_json, job.kwargs_json, job.error.message if job.error else ""]
    return any(search.text.lower() in h.lower() for h in hay)


def test_a_full_page_says_where_to_go_on_and_the_last_says_nothing_is_left(
    broker: Broker,
) -> None:
    broker.enqueue([NewJob(task="t", queue="q") for _ in range(4)])
    first = broker.search_jobs(JobSearch(), limit=2)
    assert len(first.jobs) == 2 and first.next_cursor is not None and not first.truncated
    last = broker.search_jobs(JobSearch(), limit=2, cursor=first.next_cursor)
    assert len(last.jobs) == 2 and last.next_cursor is None
    assert not {j.id for j in first.jobs} & {j.id for j in last.jobs}
    empty = broker.search_jobs(JobSearch(queue="elsewhere"), limit=5)
    assert empty.jobs == [] and empty.next_cursor is None


def test_pages_stay_stable_while_jobs_are_enqueued_and_move(broker: Broker) -> None:
    """Between pages, new jobs arrive, others are claimed, finished and cancelled: a job
    that matches all along comes exactly once, and no job comes twice."""
    first = broker.enqueue([NewJob(task="t", queue="qa") for _ in range(30)])
    # jobs that stay queued in qa all along: none of them is ever claimed or cancelled
    broker.enqueue([NewJob(task="t", queue="qb") for _ in range(10)])
    search = JobSearch(state=JobState.QUEUED)
    seen: list[str] = []
    page = broker.search_jobs(search, limit=4)
    moved: set[str] = set()
    for round_ in range(40):
        seen += [j.id for j in page.jobs]
        if page.next_cursor is None:
            break
        broker.enqueue([NewJob(task="t", queue="qa")])  # newer than the cursor: not this walk
        claimed = broker.claim("w", ["qb"], 1, LEASE).jobs  # leaves the state (any place)
        moved |= {j.id for j in claimed}
        for job in claimed:
            broker.finish([Outcome(job.id, job.attempt, JobState.SUCCEEDED, result_json="1")])
        if round_ % 3 == 0:
            broker.cancel(first[round_].id)
            moved.add(first[round_].id)
        page = broker.search_jobs(search, limit=4, cursor=page.next_cursor)
    assert len(seen) == len(set(seen)), "a job came twice"
    steady = {j.id for j in first} - moved
    assert steady <= set(seen), "a job that stayed queued all along was skipped"


def test_a_search_scans_a_bounded_number_of_jobs_a_page(
    broker: Broker, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(searching, "SCAN_BUDGET", 10)
    monkeypatch.setattr(searching, "CHUNK", 4)
    jobs = broker.enqueue(
        [NewJob(task="t", queue="q", args_json=json.dumps([i])) for i in range(25)]
    )
    hit = broker.search_jobs(JobSearch(text="[0]"), limit=5)  # the oldest: far below
    assert hit.jobs == [] and hit.truncated and hit.next_cursor is not None
    found: list[str] = []
    cursor: str | None = None
    for _ in range(10):
        page = broker.search_jobs(JobSearch(text="[0]"), limit=5, cursor=cursor)
        found += [j.id for j in page.jobs]
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert found == [jobs[0].id]


@pytest.mark.parametrize(
    ("kwargs", "names"),
    [
        ({"cursor": "42"}, "cursor"),
        ({"cursor": "c1.!!"}, "cursor"),
        ({"cursor": "c1.LTE"}, "cursor"),  # "-1"
        ({"limit": 0}, "limit"),
        ({"limit": 1001}, "limit"),
    ],
)
def test_a_bad_cursor_or_page_size_is_refused_by_name(
    broker: Broker, kwargs: dict[str, Any], names: str
) -> None:
    with pytest.raises(ConfigError, match=names):
        broker.search_jobs(JobSearch(), **kwargs)


@pytest.mark.parametrize(
    ("search", "names"),
    [
        (JobSearch(text=""), "text"),
        (JobSearch(text="x" * 201), "text"),
        (JobSearch(since=float("nan")), "since"),
        (JobSearch(until=float("inf")), "until"),
    ],
)
def test_a_bad_filter_is_refused_by_name(broker: Broker, search: JobSearch, names: str) -> None:
    with pytest.raises(ConfigError, match=names):
        broker.search_jobs(search)


def test_search_by_state_past_the_merge_limit_reads_the_state_range(
    broker: Broker, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Beyond MERGE_LIMIT queues of one state, SQLite and PostgreSQL read the state's range
    (sorted) instead of merging one range per queue: the pages are the same."""
    from faena.brokers.postgres import listing as pg_listing
    from faena.brokers.sqlite import listing as sqlite_listing

    monkeypatch.setattr(pg_listing, "MERGE_LIMIT", 1)
    monkeypatch.setattr(sqlite_listing, "MERGE_LIMIT", 1)
    jobs = broker.enqueue([NewJob(task="t", queue=QUEUES[i % 3]) for i in range(7)])
    want = [j.id for j in reversed(jobs)]
    assert _all_pages(broker, JobSearch(state=JobState.QUEUED), 2) == want
    assert _all_pages(broker, JobSearch(state=JobState.QUEUED, text="[]"), 3) == want
