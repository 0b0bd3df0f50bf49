"""Searching jobs, a page at a time, by keyset: what every backend's ``search_jobs`` shares.

A job's place in a listing is its enqueue sequence (``seq``: SQLite's rowid, PostgreSQL's
``seq`` column, the score of Redis' ``all`` index, the memory broker's counter). It is unique
and never changes, so a page that starts strictly below the last one's lowest sequence never
repeats a job and never skips one that still matches, however many jobs are enqueued or
change state between the pages. The cursor is that sequence, wrapped (``c1.<base64>``) so
callers treat it as opaque.

The store's indexes give the jobs of the state / queue / task filters newest first (see the
backends' ``listing`` modules); the time range and the text are checked on those rows here,
and a page looks at no more than :data:`SCAN_BUDGET` of them: when the budget runs out before
the page is full, the page says ``truncated`` and its ``next_cursor`` goes on from the last
job looked at (more may match there).
"""

from __future__ import annotations

import base64
import binascii
import math
from collections.abc import Callable
from dataclasses import dataclass

from faena.core import checks
from faena.core.job import Job
from faena.core.states import JobState
from faena.errors import ConfigError


@dataclass(frozen=True, slots=True)
class JobSearch:
    """The filters of :meth:`OperatorStore.search_jobs`; ``None`` matches anything."""

    state: JobState | None = None
    queue: str | None = None
    task: str | None = None
    #: enqueued at or after this POSIX time (``Job.enqueued_at``)
    since: float | None = None
    #: enqueued before this POSIX time
    until: float | None = None
    #: 1 to 200 characters found in the args JSON, the kwargs JSON or the error message
    #: (ASCII letters match either case)
    text: str | None = None


@dataclass(frozen=True, slots=True)
class JobPage:
    """One page of a search, newest first."""

    jobs: list[Job]
    #: pass it back for the next page; ``None`` when nothing more matches
    next_cursor: str | None
    #: the page stopped at its bound of jobs looked at (a time range or a text filter)
    #: before it was full: more may match, from ``next_cursor`` on
    truncated: bool = False


#: most jobs one page looks at when a time range or a text is given (checked on the rows the
#: listing's index ranges give for the other filters)
SCAN_BUDGET = 5000
#: rows fetched at a time while scanning
CHUNK = 500
#: the longest text a search takes
MAX_TEXT = 200
#: most jobs in a page
MAX_PAGE = 1000

_PREFIX = "c1."

#: ``scan(below, n)``: up to ``n`` jobs of the indexed filters with a sequence below ``below``
#: (``None``: from the newest), newest first, each with its sequence; and where to go on
#: (``None`` when nothing is left below). A scan that stops early for a bound of its own
#: returns fewer than ``n`` jobs and a place to go on: the page is then ``truncated``.
Scan = Callable[[int | None, int], tuple[list[tuple[int, Job]], int | None]]


#: what a narrow scan reads of a row: seq, enqueued_at, args JSON, kwargs JSON, error message
Candidate = tuple[int, float, str, str, str | None]
#: ``narrow(below, n)``: as :data:`Scan`, with those columns only
Narrow = Callable[[int | None, int], tuple[list[Candidate], int | None]]
#: ``fetch(seqs)``: the jobs of those sequences still stored, by sequence
Fetch = Callable[[list[int]], dict[int, Job]]


def sql_chunk(rows: list[tuple[int, Job]], n: int) -> tuple[list[tuple[int, Job]], int | None]:
    """What a SQL scan returns: ``n`` rows mean there may be more below the last."""
    return rows, (rows[-1][0] if len(rows) == n and rows else None)


def encode_cursor(seq: int) -> str:
    raw = str(int(seq)).encode()
    return _PREFIX + base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> int | None:
    """The sequence a cursor stands for; a cursor this module did not make is refused."""
    if cursor is None:
        return None
    fix = "pass back a next_cursor exactly as a page returned it, or leave it out to start"
    if not isinstance(cursor, str) or not cursor.startswith(_PREFIX) or len(cursor) > 40:
        raise ConfigError(f"cursor {cursor!r} is not a cursor of faena's listings; {fix}")
    body = cursor[len(_PREFIX) :]
    try:
        text = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)).decode()
        seq = int(text)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise ConfigError(f"cursor {cursor!r} is damaged; {fix}") from None
    if seq < 0 or not text.isdigit():
        raise ConfigError(f"cursor {cursor!r} is damaged; {fix}")
    return seq


def check_search(search: JobSearch, limit: int) -> None:
    """The filters as ``list_jobs`` checks them, a time range of finite numbers, a text of
    1 to :data:`MAX_TEXT` characters and ``1 <= limit <= MAX_PAGE``."""
    checks.check_filters(search.state, search.queue, search.task)
    for name in ("since", "until"):
        value = getattr(search, name)
        if value is not None and (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
        ):
            raise ConfigError(f"{name}={value!r}: give a POSIX time in seconds, or None")
    if search.text is not None and (
        not isinstance(search.text, str) or not 1 <= len(search.text) <= MAX_TEXT
    ):
        raise ConfigError(
            f"text={search.text!r}: give 1 to {MAX_TEXT} characters to look for, or None"
        )
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_PAGE:
        raise ConfigError(f"limit={limit!r}: a page holds 1 to {MAX_PAGE} jobs")


def needs_scan(search: JobSearch) -> bool:
    """Whether some filter is checked on the rows rather than read off an index."""
    return search.since is not None or search.until is not None or search.text is not None


def fold(text: str) -> str:
    """Case folding of the text filter: ASCII letters only, as every backend does it."""
    return text.translate(_ASCII_LOWER)


_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def residual(search: JobSearch, job: Job) -> bool:
    """Whether ``job`` passes the filters that are not read off an index."""
    message = job.error.message if job.error is not None else None
    return passes(search, (0, job.enqueued_at, job.args_json, job.kwargs_json, message))


def passes(search: JobSearch, row: Candidate) -> bool:
    """Whether a candidate row passes the filters that are not read off an index."""
    _seq, enqueued_at, args_json, kwargs_json, message = row
    if search.since is not None and enqueued_at < search.since:
        return False
    if search.until is not None and enqueued_at >= search.until:
        return False
    if search.text is None:
        return True
    needle = fold(search.text)
    return any(needle in fold(s) for s in (args_json, kwargs_json, message or ""))


def indexed(search: JobSearch, job: Job) -> bool:
    """Whether ``job`` passes the state / queue / task filters."""
    return (
        (search.state is None or job.state is search.state)
        and (search.queue is None or job.queue == search.queue)
        and (search.task is None or job.task == search.task)
    )


def walk(
    scan: Scan,
    search: JobSearch,
    limit: int,
    cursor: str | None,
    narrow: tuple[Narrow, Fetch] | None = None,
) -> JobPage:
    """One page: the jobs of ``scan`` that pass :func:`residual`, below ``cursor``. With
    ``narrow``, a time range or a text is checked on narrow rows and only the matches are
    read whole."""
    check_search(search, limit)
    below = decode_cursor(cursor)
    if narrow is not None and needs_scan(search):
        return _walk_narrow(*narrow, search, limit, below)
    found: list[tuple[int, Job]] = []
    seen = 0
    scanning = needs_scan(search)
    step = CHUNK if scanning else limit + 1
    while True:
        chunk, low = scan(below, step)
        for seq, job in chunk:
            seen += 1
            below = seq
            if residual(search, job):
                found.append((seq, job))
                if len(found) > limit:  # one more than the page: there is a next page
                    return JobPage([j for _, j in found[:limit]], encode_cursor(found[-2][0]))
            if scanning and seen >= SCAN_BUDGET:
                more = encode_cursor(below)
                return JobPage([j for _, j in found], more, truncated=True)
        if low is None:
            return JobPage([j for _, j in found], None)
        below = low
        if len(chunk) < step:  # the backend stopped looking early: more may match below
            return JobPage([j for _, j in found], encode_cursor(below), truncated=True)


def in_memory(
    jobs: list[tuple[int, Job]], search: JobSearch, limit: int, cursor: str | None
) -> JobPage:
    """A page over jobs held in memory with their sequences (the memory broker)."""
    ordered = sorted(((s, j) for s, j in jobs if indexed(search, j)), key=lambda p: -p[0])

    def scan(below: int | None, n: int) -> tuple[list[tuple[int, Job]], int | None]:
        rows = [p for p in ordered if below is None or p[0] < below][:n]
        return sql_chunk(rows, n)

    return walk(scan, search, limit, cursor)


def _walk_narrow(
    narrow: Narrow, fetch: Fetch, search: JobSearch, limit: int, below: int | None
) -> JobPage:
    hits: list[int] = []
    seen = 0

    def load(seqs: list[int]) -> list[Job]:
        # a job that left the filters between the scan and this read is not shown
        got = fetch(seqs) if seqs else {}
        return [
            got[s]
            for s in seqs
            if s in got and indexed(search, got[s]) and residual(search, got[s])
        ]

    while True:
        rows, low = narrow(below, CHUNK)
        for row in rows:
            seen += 1
            below = row[0]
            if passes(search, row):
                hits.append(row[0])
                if len(hits) > limit:
                    return JobPage(load(hits[:limit]), encode_cursor(hits[limit - 1]))
            if seen >= SCAN_BUDGET:
                return JobPage(load(hits), encode_cursor(below), truncated=True)
        if low is None:
            return JobPage(load(hits), None)
        below = low
        if len(rows) < CHUNK:
            return JobPage(load(hits), encode_cursor(below), truncated=True)
