"""The chaos harness's invariants, read off the attempts' log, the workers' logs and the store.

Pure functions over what was recorded (no broker, no clock), so each can be tested alone;
the same invariants (fencing, duplicates, limits) are also checked while the run goes on,
one sample about every second (``Watch``, fed by bench/chaos_sampler.Sampler):

- nothing lost: every accepted job ends terminal (succeeded, dead or cancelled);
- no duplicate success: at most one accepted success per job (the store's attempt history
  and every worker's ``job.succeeded`` events);
- fencing: no two attempts of one job whose outcome the store accepted ran at once, and the
  store's last attempt is the newest the log saw started;
- limits: the pool's and the cap's use, sampled from the store's live leases, never above;
- every dead job dead for a stated reason (its error);
- no job enqueued for later (a delay or a run_at under the producer's stepped clock) starts
  before the run_at the store took;
- recovery: after each fault, the seconds until jobs end again and until every job the hit
  worker held has started again.
"""

from __future__ import annotations

import itertools
import json
import statistics
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from faena.core.job import Job
from faena.core.states import JobState

TERMINAL = {JobState.SUCCEEDED, JobState.DEAD, JobState.CANCELLED}
ACCEPTED_EVENTS = {"job.succeeded", "job.failed", "job.dead", "job.cancelled"}


@dataclass(frozen=True)
class Record:
    kind: str  # start, end, fail
    job_id: str
    attempt: int
    pid: int
    at: float


@dataclass
class Fault:
    kind: str
    target: str  # what it hit: a worker's name, "broker", "proxy", "disk", "clock"
    start: float
    end: float = 0.0
    pids: tuple[int, ...] = ()  # the processes it stopped or killed


@dataclass
class Findings:
    jobs: int = 0
    lost: list[str] = field(default_factory=list)
    duplicate_successes: list[str] = field(default_factory=list)
    overlapping_attempts: list[str] = field(default_factory=list)
    stale_final: list[str] = field(default_factory=list)
    dead_without_reason: list[str] = field(default_factory=list)
    dead_by_reason: dict[str, int] = field(default_factory=dict)
    refused_writes: int = 0
    max_pool: int = 0
    max_running: int = 0
    recovery: dict[str, list[float]] = field(default_factory=dict)
    early_starts: list[str] = field(default_factory=list)
    samples: int = 0  # the continuous checks' samples (``Watch``)
    continuous: list[str] = field(default_factory=list)  # what they saw, with when

    def violations(self, pool: int, parallelism: int) -> list[str]:
        out = []
        kinds = ("lost", "duplicate_successes", "overlapping_attempts", "stale_final")
        for name in (*kinds, "early_starts"):
            if getattr(self, name):
                out.append(f"{name}: {getattr(self, name)[:10]}")
        if self.dead_without_reason:
            out.append(f"dead without a reason: {self.dead_without_reason[:10]}")
        if self.continuous:
            out.append(f"seen while running: {self.continuous[:10]}")
        if self.max_pool > pool:
            out.append(f"pool use {self.max_pool} > its size {pool}")
        if self.max_running > parallelism:
            out.append(f"running {self.max_running} > the parallelism cap {parallelism}")
        return out


def parse_record(line: str) -> Record | None:
    """One line of the attempts' log; ``None`` for a line cut by a full disk or a kill."""
    parts = line.split()
    if len(parts) != 5:
        return None
    kind, job_id, attempt, pid, at = parts
    try:
        return Record(kind, job_id, int(attempt), int(pid), float(at))
    except ValueError:
        return None


def parse_event(line: str) -> dict[str, Any] | None:
    """One JSON line of a worker's log; ``None`` for anything else it printed."""
    if not line.startswith("{"):
        return None
    try:
        entry = json.loads(line)
    except ValueError:
        return None
    return entry if isinstance(entry, dict) else None


def read_records(path: Path) -> list[Record]:
    if not path.exists():
        return []
    return [r for r in map(parse_record, path.read_text().splitlines()) if r is not None]


def read_events(paths: Iterable[Path]) -> list[dict[str, Any]]:
    out = []
    for path in paths:
        for line in path.read_text(errors="replace").splitlines():
            entry = parse_event(line)
            if entry is not None:
                out.append(entry)
    return out


def logged_at(event: dict[str, Any]) -> float:
    """When a worker logged an event (its ``timestamp``, ISO 8601), as POSIX seconds; an
    event without one counts as logged at the end of time."""
    stamp = event.get("timestamp")
    if not isinstance(stamp, str):
        return float("inf")
    try:
        return datetime.fromisoformat(stamp).timestamp()
    except ValueError:
        return float("inf")


def attempt_spans(records: Sequence[Record]) -> dict[tuple[str, int], tuple[float, float]]:
    """Each attempt's (start, end) from the log; an attempt with no end runs to infinity."""
    starts: dict[tuple[str, int], float] = {}
    ends: dict[tuple[str, int], float] = {}
    for r in records:
        key = (r.job_id, r.attempt)
        if r.kind == "start":
            starts[key] = r.at
        else:
            ends[key] = r.at
    return {k: (s, ends.get(k, float("inf"))) for k, s in starts.items()}


def check(
    accepted: Sequence[str],
    jobs: dict[str, Job | None],
    records: Sequence[Record],
    events: Sequence[dict[str, Any]],
    samples: Sequence[tuple[int, int]],
    faults: Sequence[Fault],
    due: Mapping[str, float] | None = None,
) -> Findings:
    """``due``: the jobs enqueued for later (a delay or a run_at, by the producer's stepped
    clock) and the run_at the store took, before which none may start."""
    f = Findings(jobs=len(accepted))
    for job_id in accepted:
        job = jobs.get(job_id)
        if job is None or job.state not in TERMINAL:
            f.lost.append(job_id)
    # duplicates: in the store's history and in the workers' accepted-report events
    successes: dict[str, set[int]] = defaultdict(set)
    # each accepted attempt and when its report was logged: the attempt was over by then
    # (a process job's child that was killed writes no ``end``; its worker reports it)
    accepted_attempts: dict[tuple[str, int], float] = {}
    for e in events:
        name, said = e.get("event"), e.get("job_id")
        if name in ACCEPTED_EVENTS and isinstance(said, str):
            accepted_attempts[(said, int(e.get("attempt", 0)))] = logged_at(e)
            if name == "job.succeeded":
                successes[said].add(int(e.get("attempt", 0)))
        elif name == "job.lease_lost":
            f.refused_writes += 1
    for job_id, job in jobs.items():
        if job is None:
            continue
        stored = {a.attempt for a in job.attempts if a.outcome == "succeeded"}
        if len(stored | successes.get(job_id, set())) > 1:
            f.duplicate_successes.append(job_id)
    # fencing: accepted attempts of one job never overlap; the newest started is the store's
    spans = attempt_spans(records)
    by_job: dict[str, list[tuple[int, float, float]]] = defaultdict(list)
    for (job_id, attempt), (began, ended) in spans.items():
        if (job_id, attempt) in accepted_attempts:
            reported = accepted_attempts[(job_id, attempt)]
            by_job[job_id].append((attempt, began, min(ended, reported)))
    for job_id, tries in by_job.items():
        tries.sort(key=lambda t: t[1])
        for (a1, _s1, e1), (a2, s2, _e2) in itertools.pairwise(tries):
            if s2 < e1:
                f.overlapping_attempts.append(f"{job_id}: attempts {a1} and {a2}")
    newest: dict[str, int] = {}
    for r in records:
        newest[r.job_id] = max(newest.get(r.job_id, 0), r.attempt)
    for job_id, job in jobs.items():
        stale = job is not None and job.attempt < newest.get(job_id, 0)
        if stale and job is not None and job.state is JobState.SUCCEEDED:
            f.stale_final.append(f"{job_id}: stored attempt {job.attempt} < {newest[job_id]}")
    # dead jobs and their reasons
    reasons: dict[str, int] = defaultdict(int)
    for job_id, job in jobs.items():
        if job is not None and job.state is JobState.DEAD:
            if job.error is None or not job.error.type:
                f.dead_without_reason.append(job_id)
            else:
                reasons[f"{job.task}: {job.error.type}"] += 1
    f.dead_by_reason = dict(sorted(reasons.items()))
    first: dict[str, float] = {}
    for r in records:
        if r.kind == "start":
            first[r.job_id] = min(first.get(r.job_id, r.at), r.at)
    for job_id, at in sorted((due or {}).items()):
        if job_id in first and first[job_id] < at - 0.001:  # the log's microseconds
            f.early_starts.append(f"{job_id}: started {at - first[job_id]:.3f} s before its run_at")
    f.max_pool = max((p for p, _ in samples), default=0)
    f.max_running = max((r for _, r in samples), default=0)
    f.recovery = recovery(faults, records)
    return f


def recovery(faults: Sequence[Fault], records: Sequence[Record]) -> dict[str, list[float]]:
    """Per fault kind, the seconds from each fault's end until jobs end again and, for a
    fault that stopped or killed workers, until every attempt they held has a successor (or
    ended, for a paused worker that finished it after all)."""
    ends = sorted(r.at for r in records if r.kind in ("end", "fail"))
    spans = attempt_spans(records)
    started: dict[str, list[float]] = defaultdict(list)
    pid_of: dict[tuple[str, int], int] = {}
    for r in records:
        if r.kind == "start":
            started[r.job_id].append(r.at)
            pid_of[(r.job_id, r.attempt)] = r.pid
    out: dict[str, list[float]] = defaultdict(list)
    for fault in faults:
        if not fault.end:
            continue
        after = [t for t in ends if t >= fault.end]
        if not after:
            continue
        until = after[0]
        hit = set(fault.pids)
        for (job_id, attempt), (s, e) in spans.items():
            if pid_of[(job_id, attempt)] in hit and s < fault.start < e:
                later = [t for t in started[job_id] if t > fault.start and t != s]
                resumed = min(later + ([e] if e != float("inf") else []), default=None)
                if resumed is not None:
                    until = max(until, resumed)
        out[fault.kind].append(max(0.0, until - fault.end))
    return dict(out)


def summary(values: Sequence[float]) -> str:
    if not values:
        return "-"
    return f"{statistics.median(values):.1f} / {max(values):.1f}"


@dataclass(frozen=True)
class LiveLease:
    """A running job's live lease, as one sample read it off the store."""

    job_id: str
    attempt: int
    pool: str | None = None
    slots: int = 1


@dataclass(frozen=True)
class Violation:
    at: float  # when the sample that saw it was taken (POSIX seconds)
    kind: str  # overlap, duplicate, pool, cap, stale_lease
    detail: str

    def __str__(self) -> str:
        return f"{self.at:.1f} {self.kind}: {self.detail}"


@dataclass
class Watch:
    """The invariants checked while a run goes on, one sample at a time (about every second):
    each sample brings the attempts' log lines and the workers' log events written since the
    last one, then the live leases read off the store after them.

    - fencing: two attempts of one job whose reports the store accepted never ran at once
      (an attempt runs from its ``start`` line to its ``end`` line or to its accepted report,
      whichever comes first), and no live lease in the store is of an older attempt than
      one the log has already seen start (the store's attempt number never goes back);
    - no duplicate success: one accepted success a job;
    - limits: the pool's slots and the cap, counted from the live leases, never above.

    Each violation is kept once, with the time of the sample that saw it.
    """

    pool: int
    parallelism: int
    pool_name: str = "limited"
    samples: int = 0
    max_pool: int = 0
    max_running: int = 0
    violations: list[Violation] = field(default_factory=list)
    _starts: dict[tuple[str, int], float] = field(default_factory=dict)
    _ends: dict[tuple[str, int], float] = field(default_factory=dict)
    _accepted: dict[str, dict[int, float]] = field(default_factory=lambda: defaultdict(dict))
    _successes: dict[str, set[int]] = field(default_factory=lambda: defaultdict(set))
    _newest: dict[str, int] = field(default_factory=dict)
    _seen: set[tuple[str, str]] = field(default_factory=set)

    def observe(
        self,
        at: float,
        records: Iterable[Record],
        events: Iterable[dict[str, Any]],
        leases: Sequence[LiveLease] | None,
    ) -> list[Violation]:
        """Take one sample; ``leases`` is ``None`` when the store could not be read (a
        fault): the log is still checked. What this sample newly found."""
        before = len(self.violations)
        touched: set[str] = set()
        for r in records:
            key = (r.job_id, r.attempt)
            if r.kind == "start":
                self._starts[key] = r.at
                self._newest[r.job_id] = max(self._newest.get(r.job_id, 0), r.attempt)
            else:
                self._ends.setdefault(key, r.at)
            touched.add(r.job_id)
        for e in events:
            name, job_id = e.get("event"), e.get("job_id")
            if name not in ACCEPTED_EVENTS or not isinstance(job_id, str):
                continue
            attempt = int(e.get("attempt", 0))
            self._accepted[job_id].setdefault(attempt, logged_at(e))
            if name == "job.succeeded":
                self._successes[job_id].add(attempt)
            touched.add(job_id)
        for job_id in sorted(touched):
            self._fencing(at, job_id)
            if len(self._successes.get(job_id, ())) > 1:
                tries = sorted(self._successes[job_id])
                self._report(at, "duplicate", job_id, f"{job_id}: successes of attempts {tries}")
        if leases is not None:
            self.samples += 1
            used = sum(x.slots for x in leases if x.pool == self.pool_name)
            self.max_pool = max(self.max_pool, used)
            self.max_running = max(self.max_running, len(leases))
            if used > self.pool:
                self._report(at, "pool", f"{at}", f"{used} slots in use > its size {self.pool}")
            if len(leases) > self.parallelism:
                cap = self.parallelism
                self._report(at, "cap", f"{at}", f"{len(leases)} running > the cap {cap}")
            for x in leases:
                newest = self._newest.get(x.job_id, 0)
                if x.attempt < newest:
                    detail = f"{x.job_id}: live lease of attempt {x.attempt} < started {newest}"
                    self._report(at, "stale_lease", f"{x.job_id}:{x.attempt}", detail)
        return self.violations[before:]

    def _fencing(self, at: float, job_id: str) -> None:
        tries = []
        for attempt, reported in self._accepted.get(job_id, {}).items():
            start = self._starts.get((job_id, attempt))
            if start is not None:
                end = min(self._ends.get((job_id, attempt), float("inf")), reported)
                tries.append((start, end, attempt))
        tries.sort()
        for (_s1, e1, a1), (s2, _e2, a2) in itertools.pairwise(tries):
            if s2 < e1:
                self._report(
                    at, "overlap", f"{job_id}:{a1}:{a2}", f"{job_id}: attempts {a1} and {a2}"
                )

    def _report(self, at: float, kind: str, key: str, detail: str) -> None:
        if (kind, key) not in self._seen:
            self._seen.add((kind, key))
            self.violations.append(Violation(at, kind, detail))
