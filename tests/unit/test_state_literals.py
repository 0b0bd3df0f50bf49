"""One owner per job rule: the state sets and the retry and cancel rules live in
``faena.core.states`` and ``faena.core.lifecycle``; the SQL and Lua texts of the brokers get
the sets filled in when they are loaded, and every list of states in them, after filling in,
must be one of the core sets (so a list written by hand that drifts fails here)."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest
from tests.state_lists import drifted, single_states, state_lists

from faena.brokers import literals
from faena.brokers.memory import MemoryBroker
from faena.brokers.postgres.config import PgConfig
from faena.brokers.postgres.queries import Queries
from faena.brokers.redis import scripts
from faena.brokers.sqlite import listing
from faena.brokers.sqlite import queries as sqlite_queries
from faena.core import lifecycle
from faena.core.clock import ManualClock
from faena.core.job import NewJob, Outcome
from faena.core.states import (
    ALL,
    CANCELLABLE,
    HOLDS_IDEMPOTENCY_KEY,
    LEASED,
    LIVE,
    NAMED,
    PENDING,
    RETRYABLE,
    TERMINAL,
    TRANSITIONS,
    JobState,
)
from faena.errors import InvalidTransitionError

BROKERS = Path(__file__).resolve().parents[2] / "src" / "faena" / "brokers"


def _values(states: frozenset[JobState]) -> frozenset[str]:
    return frozenset(s.value for s in states)


# the checker itself -----------------------------------------------------------------------
def test_the_checker_finds_lists_that_are_not_a_core_set() -> None:
    assert drifted({"ok": "WHERE state IN ('scheduled', 'queued', 'failed')"}) == []
    assert drifted({"ok": "local P = { scheduled = true, queued = true, failed = true }"}) == []
    assert drifted({"sql": "WHERE state IN ('queued', 'scheduled')"}) == [
        ("sql", ["queued", "scheduled"])
    ]
    assert drifted({"lua": "local P = { queued = true, scheduled = true }"}) != []
    assert drifted({"pg": "CHECK (state = ANY (ARRAY['queued'::text, 'dead'::text]))"}) != []
    assert drifted({"one": "UPDATE jobs SET state = 'canceled'"}) == [("one", ["canceled"])]
    assert drifted({"lua": "put(id, r, { I.state, 'canceled' })"}) == [("lua", ["canceled"])]
    # lists of other things are not state lists
    assert drifted({"x": "typeof(run_at) NOT IN ('real', 'integer')"}) == []


# the sets and the rules ---------------------------------------------------------------------
def test_the_sets_agree_with_the_transition_table() -> None:
    into = {dst: {src for src, dsts in TRANSITIONS.items() if dst in dsts} for dst in JobState}
    assert set(TRANSITIONS) == ALL
    assert into[JobState.RUNNING] == PENDING  # only a pending job is claimed
    assert into[JobState.CANCELLED] == CANCELLABLE
    assert into[JobState.QUEUED] == RETRYABLE | LEASED  # by hand, or released / expired
    assert {
        s for s, dsts in TRANSITIONS.items() if dsts <= {JobState.QUEUED, JobState.SCHEDULED}
    } == TERMINAL
    assert LIVE == ALL - TERMINAL and PENDING | LEASED == LIVE and not PENDING & LEASED
    assert RETRYABLE <= TERMINAL and CANCELLABLE == LIVE
    assert LIVE | {JobState.SUCCEEDED} == HOLDS_IDEMPOTENCY_KEY
    assert set(NAMED.values()) >= {PENDING, TERMINAL, LEASED, RETRYABLE, CANCELLABLE}


@pytest.mark.parametrize("state", list(JobState))
def test_retry_and_cancel_by_hand_follow_the_core_sets(state: JobState) -> None:
    job = lifecycle.create(NewJob(task="t", queue="q"), 1.0).evolve(state=state)
    if state in RETRYABLE:
        lifecycle.check_retry(job)
        assert lifecycle.manual_retry(job, 2.0).state is JobState.QUEUED
    else:
        with pytest.raises(InvalidTransitionError, match="only dead or cancelled jobs can be"):
            lifecycle.check_retry(job)
    if state in PENDING:
        ended = lifecycle.cancel(job, 2.0)
        assert (ended.state, ended.finished_at, ended.cancel_requested) == (
            JobState.CANCELLED,
            2.0,
            False,
        )
    elif state in LEASED:
        asked = lifecycle.cancel(job, 2.0)
        assert (asked.state, asked.finished_at, asked.cancel_requested) == (state, None, True)
    else:
        with pytest.raises(InvalidTransitionError, match="and cannot be cancelled; only sched"):
            lifecycle.cancel(job, 2.0)


def test_the_memory_broker_refuses_a_move_the_transition_table_does_not_allow() -> None:
    broker = MemoryBroker(clock=ManualClock())
    (job,) = broker.enqueue([NewJob(task="t", queue="q")])
    (claimed,) = broker.claim("w", ["q"], 1, 30.0).jobs
    with pytest.raises(InvalidTransitionError, match="running; it cannot become scheduled"):
        broker.finish([Outcome(job.id, claimed.attempt, JobState.SCHEDULED)])
    stored = broker.get(job.id)
    assert stored is not None and stored.state is JobState.RUNNING


# the backends' texts -----------------------------------------------------------------------
def _hand_written(paths: list[Path]) -> dict[str, list[frozenset[str]]]:
    found = {p.name: state_lists(p.read_text("utf-8")) for p in paths}
    return {name: lists for name, lists in found.items() if lists}


def test_no_broker_source_lists_states_by_hand() -> None:
    """The sources name the core sets (``@pending@``, ``STATES_PENDING``, ``sql_list``);
    migrations are history and are checked after they are applied instead."""
    sources = [
        BROKERS / "memory.py",
        BROKERS / "postgres" / "queries.sql",
        *BROKERS.glob("postgres/*.py"),
        *BROKERS.glob("sqlite/*.py"),
        *BROKERS.glob("redis/*.py"),
        *BROKERS.glob("redis/lua/*.lua"),
    ]
    assert len(sources) > 30
    assert _hand_written(sources) == {}


def _sqlite_texts() -> dict[str, str]:
    texts = {
        f"queries.{name}": value
        for module in (sqlite_queries, listing)
        for name, value in vars(module).items()
        if isinstance(value, str) and not name.startswith("__")
    }
    texts["candidates"] = sqlite_queries.candidates(2)
    texts["candidates_first"] = sqlite_queries.candidates(1, True)
    texts["next_run_at"] = sqlite_queries.next_run_at(2)
    texts["claim"] = sqlite_queries.claim(2)
    texts["finish_succeeded"] = sqlite_queries.finish_succeeded(2)
    return texts


def test_sqlite_statements_list_only_core_sets() -> None:
    texts = _sqlite_texts()
    assert drifted(texts) == []
    found = {items for text in texts.values() for items in state_lists(text)}
    assert found == {
        _values(PENDING),
        _values(LIVE),  # the queue stats' counters of live states
        _values(HOLDS_IDEMPOTENCY_KEY),
        _values(TERMINAL),
    }


def test_postgres_statements_list_only_core_sets() -> None:
    queries = Queries.load(PgConfig.parse("postgresql://u@h/d?schema=s"))
    texts = {}
    for field in dataclasses.fields(queries):
        value = getattr(queries, field.name)
        texts[field.name] = value if isinstance(value, str) else value.sql.decode()
    assert "@" not in "".join(texts.values())  # every mark filled in
    assert drifted(texts) == []
    found = {items for text in texts.values() for items in state_lists(text)}
    assert found == {
        _values(PENDING),
        _values(LEASED),  # the bulk cancel's "running and not flagged yet"
        _values(LIVE),
        _values(HOLDS_IDEMPOTENCY_KEY),
        _values(TERMINAL),
    }


def test_the_lua_library_lists_only_core_sets() -> None:
    code = scripts.library().code
    assert re.search(r"STATES_[A-Z]", code) is None  # every name filled in
    assert drifted({"lib": code}, extra=[scripts.INDEXED, scripts.RAN]) == []
    found = set(state_lists(code))
    assert found == {
        # TERMINAL: the per-minute series' rule (lib.lua's ending, faena.core.stats.ending)
        _values(s)
        for s in (PENDING, LEASED, HOLDS_IDEMPOTENCY_KEY, RETRYABLE, ALL, TERMINAL)
    } | {_values(scripts.INDEXED), _values(scripts.RAN)}
    assert single_states(code) <= _values(ALL)


def test_a_lua_text_naming_no_core_set_is_refused() -> None:
    with pytest.raises(ValueError, match="STATES_PENDNG"):
        literals.fill_lua("local P = STATES_PENDNG")
