"""Job states and the transitions allowed between them."""

from __future__ import annotations

from enum import StrEnum

from faena.errors import InvalidTransitionError


class JobState(StrEnum):
    SCHEDULED = "scheduled"
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    DEAD = "dead"
    CANCELLED = "cancelled"


#: states waiting to run (a ``failed`` job waits for its retry time)
PENDING = frozenset({JobState.SCHEDULED, JobState.QUEUED, JobState.FAILED})
TERMINAL = frozenset({JobState.SUCCEEDED, JobState.DEAD, JobState.CANCELLED})
#: states in which an idempotency key stays taken
HOLDS_IDEMPOTENCY_KEY = frozenset(
    {JobState.SCHEDULED, JobState.QUEUED, JobState.RUNNING, JobState.SUCCEEDED, JobState.FAILED}
)

TRANSITIONS: dict[JobState, frozenset[JobState]] = {
    JobState.SCHEDULED: frozenset({JobState.RUNNING, JobState.CANCELLED}),
    JobState.QUEUED: frozenset({JobState.RUNNING, JobState.CANCELLED}),
    JobState.FAILED: frozenset({JobState.RUNNING, JobState.CANCELLED}),
    JobState.RUNNING: frozenset(
        {
            JobState.SUCCEEDED,
            JobState.FAILED,  # attempt failed, retry at run_at
            JobState.QUEUED,  # released, or lease expired with attempts left
            JobState.DEAD,
            JobState.CANCELLED,
        }
    ),
    JobState.SUCCEEDED: frozenset(),
    JobState.DEAD: frozenset({JobState.QUEUED}),  # manual retry
    JobState.CANCELLED: frozenset({JobState.QUEUED}),  # manual retry
}


def can_transition(src: JobState, dst: JobState) -> bool:
    return dst in TRANSITIONS[src]


def check_transition(job_id: str, src: JobState, dst: JobState) -> None:
    if not can_transition(src, dst):
        allowed = ", ".join(sorted(s.value for s in TRANSITIONS[src])) or "none"
        raise InvalidTransitionError(
            f"job {job_id} is {src.value}; it cannot become {dst.value} "
            f"(from {src.value} it can become: {allowed})"
        )
