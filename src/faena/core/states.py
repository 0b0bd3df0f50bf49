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


# The state sets below are the one owner of which states belong together: the memory broker
# and the Python parts of the SQL brokers read them, the SQL and Lua texts get them filled in
# when they are loaded (faena.brokers.literals), and tests/unit/test_state_literals.py fails
# on a state list written by hand in any of them. A new state is one edit here (and, for
# PostgreSQL and SQLite, a migration: their CHECK constraints list every state).

#: every state, in the enum's order (the order the SQL and Lua lists are written in)
ALL = frozenset(JobState)
#: states waiting to run (a ``failed`` job waits for its retry time)
PENDING = frozenset({JobState.SCHEDULED, JobState.QUEUED, JobState.FAILED})
#: states a lease is held in: a worker runs the job
LEASED = frozenset({JobState.RUNNING})
#: states not finished yet: waiting or running
LIVE = PENDING | LEASED
TERMINAL = frozenset({JobState.SUCCEEDED, JobState.DEAD, JobState.CANCELLED})
#: states in which an idempotency key stays taken
HOLDS_IDEMPOTENCY_KEY = frozenset(
    {JobState.SCHEDULED, JobState.QUEUED, JobState.RUNNING, JobState.SUCCEEDED, JobState.FAILED}
)
#: states a job can be retried by hand from (a ``failed`` one retries by itself)
RETRYABLE = frozenset({JobState.DEAD, JobState.CANCELLED})
#: states a job can be cancelled in: a pending one ends ``cancelled`` at once, a leased one
#: is asked to stop (``cancel_requested``) and ends when its worker says so or its lease ends
CANCELLABLE = PENDING | LEASED

#: the sets by the name the SQL and Lua texts use for them (``@pending@``, ``STATES_PENDING``)
NAMED: dict[str, frozenset[JobState]] = {
    "all": ALL,
    "pending": PENDING,
    "leased": LEASED,
    "live": LIVE,
    "terminal": TERMINAL,
    "holds_key": HOLDS_IDEMPOTENCY_KEY,
    "retryable": RETRYABLE,
    "cancellable": CANCELLABLE,
}


def in_order(states: frozenset[JobState]) -> list[JobState]:
    """``states`` in the enum's order (a stable order for messages and literals)."""
    return [state for state in JobState if state in states]


#: The moves between states. The memory broker (the reference backend the contract suite
#: holds every other one to) checks each state change it makes against this table, so a
#: lifecycle rule that moves a job where the table does not allow fails the suite there;
#: tests/unit/test_state_literals.py checks that the sets above agree with it.
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
    # manual retry; a pipeline run's retry makes a step whose upstreams run again wait for
    # them (scheduled, core.dependencies.BLOCKED_AT)
    JobState.DEAD: frozenset({JobState.QUEUED, JobState.SCHEDULED}),
    JobState.CANCELLED: frozenset({JobState.QUEUED, JobState.SCHEDULED}),
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
