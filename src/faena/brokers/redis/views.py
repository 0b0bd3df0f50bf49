"""The Redis broker's ``search_jobs`` and ``job_stats``.

Search pages walk the ``list`` function's indexes (by sequence: one per failed, dead and
cancelled state, the running set, else every job) from the cursor down; the function checks
the time range and the text too, so only matches leave Redis. A page looks at no more than
:data:`LOOK_BUDGET` jobs, or ``SCAN_BUDGET`` with a time range or a text.

Stats read one hash per minute of the window, ``m:<minute>`` (``queue|series`` -> events),
which the Lua functions add to where the change of state is made (``move_state`` and
``flush`` in ``lua/lib.lua``), so a window is ``minutes`` ``HGETALL`` of at most
``queues x series`` fields each; the hashes expire after
:data:`faena.core.stats.KEEP_SECONDS` and ``prune`` deletes those before its
``older_than``. The percentiles come from the newest :data:`faena.core.stats.SAMPLE_LIMIT`
jobs that ran (of the queue asked for) among the ids of the ``done`` index (terminal job
ids scored by ``finished_at``) in the window, read by the ``sample`` function in chunks
(only the three times of each job that ran leave Redis), looking at ``SAMPLE_LOOK`` x
``SAMPLE_LIMIT`` ids at most.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from faena.brokers.protocol import JobPage, JobSearch, JobStats
from faena.brokers.redis.codec import num, to_job
from faena.brokers.redis.connection import RedisURL, call
from faena.core import search as searching
from faena.core import stats
from faena.core.clock import Clock
from faena.core.job import Job
from faena.core.states import JobState

#: most jobs a search chunk looks at (in calls of ``LIST_CALL`` each) before its page stops
LOOK_BUDGET = 20_000
LIST_CALL = 2000
#: ids of the done index the ``sample`` function reads per call
SAMPLE_CALL = 1000
#: the sample looks at this many times ``SAMPLE_LIMIT`` finished ids at most
SAMPLE_LOOK = 2


def _seq(record: list[Any]) -> int:
    """The enqueue sequence in a record's rank (16 hex digits of priority, then it)."""
    return int(str(record[-1])[16:31])


class RedisViews:
    _target: RedisURL
    _client: Any
    _clock: Clock

    _key: Callable[[str], str]  # (RedisRegistry)
    _run: Callable[[str, float, list[str]], Any]  # (RedisBroker)

    def search_jobs(
        self, search: JobSearch, *, limit: int = 100, cursor: str | None = None
    ) -> JobPage:
        searching.check_search(search, limit)
        state = "" if search.state is None else JobState(search.state).value
        filters = [state, search.queue or "", search.task or ""]
        # the time range and the text are checked by the list function itself, on the jobs
        # it walks: only matches come back, and a page looks at SCAN_BUDGET jobs at most
        scanning = searching.needs_scan(search)
        extra = [
            "" if search.since is None else num(search.since),
            "" if search.until is None else num(search.until),
            "" if search.text is None else searching.fold(search.text),
        ]
        budget = searching.SCAN_BUDGET if scanning else LOOK_BUDGET

        def scan(below: int | None, n: int) -> tuple[list[tuple[int, Job]], int | None]:
            found: list[tuple[int, Job]] = []
            at, looked = "" if below is None else str(below), 0
            while True:
                step = min(LIST_CALL, budget - looked)
                args = [*filters, str(n - len(found)), "0", at, str(step), *extra]
                reply = json.loads(self._run("list", self._clock.now(), args))
                found += [(_seq(r), to_job(r)) for r in reply["records"]]
                at, looked = str(reply["cursor"]), looked + step
                if not at:
                    return found, None
                if len(found) >= n or looked >= budget:
                    return found, int(at)

        plain = JobSearch(search.state, search.queue, search.task)  # the rest is done above
        return searching.walk(scan, plain, limit, cursor)

    def _sample(self, since: float, until: float, queue: str | None) -> list[str]:
        """The percentiles' sample: run_at, started and finished of the newest
        ``SAMPLE_LIMIT`` jobs that ran among those finished in the window (of ``queue``),
        flat. The ``sample`` function reads the done index newest first, ``SAMPLE_CALL`` ids
        a call (each holds Redis about 3 ms), and looks at ``SAMPLE_LOOK`` x
        ``SAMPLE_LIMIT`` ids at most: where most of the newest didn't run (a mass cancel, a
        rare queue) the sample is smaller, and ``count`` says so."""
        limit = stats.SAMPLE_LIMIT
        budget = SAMPLE_LOOK * limit
        values: list[str] = []
        offset = 0
        while offset < budget and len(values) < 3 * limit:
            count = min(SAMPLE_CALL, budget - offset)
            want = limit - len(values) // 3
            args = [num(since), num(until), str(offset), str(count), queue or "", str(want)]
            looked, chunk = self._run("sample", self._clock.now(), args)
            if chunk:
                values += _text(chunk).split(",")
            offset += int(looked)
            if int(looked) < count:  # the window's ids are all read, or the sample is full
                break
        return values

    def job_stats(self, *, minutes: int = 60, queue: str | None = None) -> JobStats:
        stats.check_stats(minutes, queue)
        since, until = stats.window(self._clock.now(), minutes)
        starts = [since + 60.0 * n for n in range(minutes)]

        def ranges() -> list[Any]:
            pipe = self._client.pipeline(transaction=False)
            for start in starts:
                pipe.hgetall(self._key(f"m:{int(start)}"))
            return list(pipe.execute())

        replies = call(self._target, ranges)
        rows = []
        for start, fields in zip(starts, replies, strict=True):
            for field, n in fields.items():
                q, _, name = _text(field).rpartition("|")
                if queue is None or q == queue:
                    rows.append((start, name, int(n)))
        counts = stats.summed(rows)
        flat = self._sample(since, until, queue)
        durations = [
            (_float(flat[i]), _float(flat[i + 1]), _float(flat[i + 2]))
            for i in range(0, len(flat), 3)
        ]
        run, wait = stats.durations(durations)
        return stats.build(since, until, minutes, queue, counts, run, wait)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _float(value: Any) -> float | None:
    return None if value is None or value == "" else float(value)
