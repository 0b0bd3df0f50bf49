"""``lifecycle.with_row_attempt``: a store that keeps a success only on the job row
(PostgreSQL) shows the same history as one that records it."""

from __future__ import annotations

from faena.core import lifecycle
from faena.core.attempts import MAX_ATTEMPTS_KEPT, AttemptOutcome, AttemptRecord
from faena.core.job import ErrorInfo, Job
from faena.core.states import JobState


def _job(state: JobState, attempt: int = 2, started: float | None = 10.0) -> Job:
    return Job(
        id="j1", task="t", queue="q", args_json="[]", kwargs_json="{}", state=state,
        priority=0, pool="default_pool", pool_slots=1, attempt=attempt, tries=attempt,
        max_attempts=30, timeout=None, idempotency_key=None, enqueued_at=0.0, run_at=0.0,
        worker="w1", started_at=started, finished_at=12.0,
    )  # fmt: skip


FAILED = AttemptRecord(1, "w0", 1.0, 2.0, AttemptOutcome.FAILED, "E", "boom")


def test_a_success_the_history_lacks_is_read_off_the_row() -> None:
    job = lifecycle.with_row_attempt(_job(JobState.SUCCEEDED), (FAILED,))
    assert job.attempts == (
        FAILED,
        AttemptRecord(2, "w1", 10.0, 12.0, AttemptOutcome.SUCCEEDED),
    )


def test_a_success_already_recorded_is_not_added_twice() -> None:
    done = AttemptRecord(2, "w1", 10.0, 12.0, AttemptOutcome.SUCCEEDED)
    job = lifecycle.with_row_attempt(_job(JobState.SUCCEEDED), (FAILED, done))
    assert job.attempts == (FAILED, done)


def test_other_states_and_unrun_jobs_take_the_history_as_it_is() -> None:
    for state in (JobState.DEAD, JobState.CANCELLED, JobState.QUEUED, JobState.FAILED):
        assert lifecycle.with_row_attempt(_job(state), (FAILED,)).attempts == (FAILED,)
    never_ran = _job(JobState.SUCCEEDED, started=None)
    assert lifecycle.with_row_attempt(never_ran, ()).attempts == ()


def test_the_bound_holds_with_the_row_s_record() -> None:
    history = tuple(
        AttemptRecord(n, "w", 1.0, 2.0, AttemptOutcome.FAILED, "E", "x")
        for n in range(1, MAX_ATTEMPTS_KEPT + 1)
    )
    job = lifecycle.with_row_attempt(_job(JobState.SUCCEEDED, attempt=21), history)
    assert len(job.attempts) == MAX_ATTEMPTS_KEPT
    assert job.attempts[-1].outcome is AttemptOutcome.SUCCEEDED
    assert job.attempts[0].attempt == 2


def test_a_succeeded_row_s_leftover_error_is_not_the_success_s() -> None:
    """A success keeps the error fields of an earlier failed attempt on the row (shown as
    that attempt's); the success's record has none."""
    row = _job(JobState.SUCCEEDED).evolve(error=ErrorInfo("E", "boom"))
    assert lifecycle.with_row_attempt(row, (FAILED,)).attempts[-1].error_type is None
