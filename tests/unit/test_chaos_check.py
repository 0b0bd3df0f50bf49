"""The chaos harness's invariants (bench/chaos_check.py) catch what they are there to catch."""

from __future__ import annotations

import dataclasses

from bench.chaos_check import (
    Fault,
    LiveLease,
    Record,
    Violation,
    Watch,
    check,
    parse_event,
    parse_record,
    recovery,
)
from tests.unit.test_worker_ledger import job as running_job

from faena.core.attempts import AttemptRecord
from faena.core.job import ErrorInfo, Job
from faena.core.states import JobState


def stored(n: int, state: JobState, attempt: int = 1, **fields: object) -> Job:
    return dataclasses.replace(running_job(n, attempt), state=state, **fields)  # type: ignore[arg-type]


def ok(job_id: str, attempt: int) -> dict[str, object]:
    return {"event": "job.succeeded", "job_id": job_id, "attempt": attempt}


def ran(job_id: str, attempt: int, start: float, end: float, pid: int = 1) -> list[Record]:
    return [Record("start", job_id, attempt, pid, start), Record("end", job_id, attempt, pid, end)]


def test_a_clean_run_has_no_violation() -> None:
    jobs = {"j0": stored(0, JobState.SUCCEEDED, 2), "j1": stored(1, JobState.SUCCEEDED)}
    records = [*ran("j0", 1, 0.0, 1.0), *ran("j0", 2, 2.0, 3.0), *ran("j1", 1, 0.0, 1.0)]
    events = [{"event": "job.lease_lost", "job_id": "j0", "attempt": 1}, ok("j0", 2), ok("j1", 1)]
    f = check(["j0", "j1"], dict(jobs), records, events, [(3, 8), (2, 5)], [])
    assert f.violations(pool=3, parallelism=8) == []
    assert f.refused_writes == 1
    assert (f.max_pool, f.max_running) == (3, 8)


def test_a_job_not_terminal_is_lost() -> None:
    jobs = {"j0": stored(0, JobState.RUNNING), "j1": None}
    f = check(["j0", "j1"], jobs, [], [], [], [])
    assert f.lost == ["j0", "j1"]
    assert f.violations(3, 8)


def test_two_accepted_successes_of_one_job_are_a_duplicate() -> None:
    jobs = {"j0": stored(0, JobState.SUCCEEDED, 2)}
    records = [*ran("j0", 1, 0.0, 1.0), *ran("j0", 2, 2.0, 3.0)]
    f = check(["j0"], dict(jobs), records, [ok("j0", 1), ok("j0", 2)], [], [])
    assert f.duplicate_successes == ["j0"]
    history = (AttemptRecord(1, "w", 0.0, 1.0, "succeeded"),)
    g = check(["j0"], {"j0": stored(0, JobState.SUCCEEDED, 2, attempts=history)}, records,
              [ok("j0", 2)], [], [])  # fmt: skip
    assert g.duplicate_successes == ["j0"], "the store's history counts too"


def test_accepted_attempts_that_overlap_break_fencing() -> None:
    jobs = {"j0": stored(0, JobState.SUCCEEDED, 2)}
    records = [*ran("j0", 1, 0.0, 2.0), *ran("j0", 2, 1.0, 3.0)]
    events = [{"event": "job.failed", "job_id": "j0", "attempt": 1}, ok("j0", 2)]
    f = check(["j0"], dict(jobs), records, events, [], [])
    assert f.overlapping_attempts == ["j0: attempts 1 and 2"]
    refused = [{"event": "job.lease_lost", "job_id": "j0", "attempt": 1}, ok("j0", 2)]
    assert check(["j0"], dict(jobs), records, refused, [], []).overlapping_attempts == [], (
        "an overlap whose stale write was refused is what fencing is for"
    )


def test_a_success_of_an_older_attempt_than_the_newest_started_is_stale() -> None:
    jobs = {"j0": stored(0, JobState.SUCCEEDED, 1)}
    records = [*ran("j0", 1, 0.0, 1.0), Record("start", "j0", 2, 1, 2.0)]
    f = check(["j0"], dict(jobs), records, [ok("j0", 1)], [], [])
    assert f.stale_final == ["j0: stored attempt 1 < 2"]


def test_limits_and_dead_reasons() -> None:
    dead = stored(0, JobState.DEAD, error=ErrorInfo("Poison", "always"))
    silent = stored(1, JobState.DEAD)
    f = check(["j0", "j1"], {"j0": dead, "j1": silent}, [], [], [(4, 9)], [])
    assert f.dead_by_reason == {"t: Poison": 1}
    assert f.dead_without_reason == ["j1"]
    found = " ".join(f.violations(pool=3, parallelism=8))
    assert "pool use 4 > its size 3" in found and "running 9 > the parallelism cap 8" in found


def test_recovery_waits_for_the_jobs_a_killed_worker_held() -> None:
    # pid 7 held j0 when it was killed at 10.0; j0 ran again at 14.0; j1 ended at 10.5
    records = [Record("start", "j0", 1, 7, 9.0), *ran("j0", 2, 14.0, 15.0, pid=8)]
    records += ran("j1", 1, 10.2, 10.5, pid=8)
    kill = Fault("kill", "w", 10.0, 10.0, (7,))
    blip = Fault("drop", "proxy", 11.0, 12.0)
    assert recovery([kill, blip], records) == {"kill": [4.0], "drop": [3.0]}


def test_a_killed_process_job_ends_when_its_worker_reports_it() -> None:
    # attempt 1's child was SIGKILLed (no end line); its worker reported the failure at
    # 10.0 (08:20:10 UTC); attempt 2 began after: no overlap. Reported later: an overlap.
    jobs = {"j0": stored(0, JobState.SUCCEEDED, 2)}
    records = [Record("start", "j0", 1, 5, 1796631590.0), *ran("j0", 2, 1796631611.0, 1796631612.0)]
    failed = {"event": "job.failed", "job_id": "j0", "attempt": 1}
    early = [{**failed, "timestamp": "2026-12-07T08:20:10.000Z"}, ok("j0", 2)]
    assert check(["j0"], dict(jobs), records, early, [], []).overlapping_attempts == []
    late = [{**failed, "timestamp": "2026-12-07T08:20:12.500Z"}, ok("j0", 2)]
    assert check(["j0"], dict(jobs), records, late, [], []).overlapping_attempts == [
        "j0: attempts 1 and 2"
    ]


# --- the continuous checks (Watch): fed one sample at a time ----------------------------


def watch() -> Watch:
    return Watch(pool=3, parallelism=8)


def test_a_clean_sample_stream_has_no_violation_and_counts_its_samples() -> None:
    w = watch()
    pooled = [LiveLease("j0", 1, "limited", 2), LiveLease("j1", 1, "limited", 1)]
    assert w.observe(1.0, [Record("start", "j0", 1, 1, 0.5)], [], pooled) == []
    assert w.observe(2.0, ran("j1", 1, 1.0, 1.5), [ok("j1", 1)], [LiveLease("j0", 1)]) == []
    assert w.observe(3.0, [], [], None) == [], "an unreadable store is no sample"
    assert (w.samples, w.max_pool, w.max_running, w.violations) == (2, 3, 2, [])


def test_a_pool_or_cap_over_its_limit_is_seen_with_its_time() -> None:
    w = watch()
    over = [LiveLease(f"j{n}", 1, "limited" if n < 4 else None) for n in range(9)]
    found = w.observe(5.0, [], [], over)
    assert [(v.at, v.kind) for v in found] == [(5.0, "pool"), (5.0, "cap")]
    assert "4 slots in use > its size 3" in str(found[0])
    assert "9 running > the cap 8" in str(found[1])
    assert (w.max_pool, w.max_running) == (4, 9)


def test_overlapping_accepted_attempts_are_seen_when_the_second_is_reported() -> None:
    w = watch()
    w.observe(1.0, [Record("start", "j0", 1, 1, 0.0), Record("start", "j0", 2, 2, 0.5)], [], [])
    accepted_1 = {"event": "job.failed", "job_id": "j0", "attempt": 1}
    assert w.observe(2.0, [Record("end", "j0", 1, 1, 1.0)], [accepted_1], []) == []
    [v] = w.observe(3.0, [Record("end", "j0", 2, 2, 2.0)], [ok("j0", 2)], [])
    assert (v.at, v.kind, v.detail) == (3.0, "overlap", "j0: attempts 1 and 2")
    assert w.observe(4.0, [], [ok("j0", 2)], []) == [], "each violation is reported once"


def test_an_overlap_whose_stale_write_was_refused_is_no_violation() -> None:
    w = watch()
    records = [*ran("j0", 1, 0.0, 2.0, pid=1), *ran("j0", 2, 1.0, 3.0, pid=2)]
    refused = {"event": "job.lease_lost", "job_id": "j0", "attempt": 1}
    assert w.observe(4.0, records, [refused, ok("j0", 2)], []) == []


def test_two_accepted_successes_of_one_job_are_a_duplicate_while_running() -> None:
    w = watch()
    w.observe(1.0, ran("j0", 1, 0.0, 1.0), [ok("j0", 1)], [])
    [v] = w.observe(6.0, ran("j0", 2, 5.0, 6.0), [ok("j0", 2)], [])
    assert (v.at, v.kind) == (6.0, "duplicate") and "[1, 2]" in v.detail


def test_a_live_lease_older_than_a_started_attempt_is_stale() -> None:
    w = watch()
    w.observe(1.0, [Record("start", "j0", 2, 1, 0.5)], [], [LiveLease("j0", 2)])
    [v] = w.observe(2.0, [], [], [LiveLease("j0", 1)])
    assert (v.at, v.kind) == (2.0, "stale_lease")
    assert v.detail == "j0: live lease of attempt 1 < started 2"


def test_findings_carry_what_the_watch_saw() -> None:
    f = check([], {}, [], [], [], [])
    f.continuous = [str(Violation(3.0, "cap", "9 running > the cap 8"))]
    assert f.violations(3, 8) == ["seen while running: ['3.0 cap: 9 running > the cap 8']"]


def test_cut_lines_are_skipped() -> None:
    assert parse_record("start j0 1 7 10.5") == Record("start", "j0", 1, 7, 10.5)
    assert parse_record("start j0 1") is None and parse_record("start j0 x 7 1.0") is None
    assert parse_event('{"event": "job.succeeded"}') == {"event": "job.succeeded"}
    assert parse_event('{"event": "job.succ') is None and parse_event("plain text") is None


def test_a_job_for_later_that_starts_before_its_run_at_is_early() -> None:
    jobs = {"j0": stored(0, JobState.SUCCEEDED), "j1": stored(1, JobState.SUCCEEDED)}
    records = [*ran("j0", 1, 10.0, 11.0), *ran("j1", 1, 20.0, 21.0)]
    events = [ok("j0", 1), ok("j1", 1)]
    f = check(["j0", "j1"], dict(jobs), records, events, [], [], due={"j0": 12.5, "j1": 20.0})
    assert f.early_starts == ["j0: started 2.500 s before its run_at"]
    assert "early_starts" in " ".join(f.violations(3, 8))
