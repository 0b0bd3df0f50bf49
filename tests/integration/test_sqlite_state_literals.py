"""The SQLite schema a store gets from its migrations lists only core state sets (the
migrations' CHECK constraint and partial indexes, as SQLite stores them)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from tests.state_lists import drifted, state_lists

from faena.brokers.sqlite.broker import SQLiteBroker
from faena.core.states import ALL, HOLDS_IDEMPOTENCY_KEY, PENDING, JobState


def _values(states: frozenset[JobState]) -> frozenset[str]:
    return frozenset(s.value for s in states)


def test_sqlite_schema_lists_only_core_sets(tmp_path: Path) -> None:
    """The migrations' CHECK constraint and partial indexes, as SQLite stores them. A new
    state needs a migration that rebuilds the CHECK (an applied migration is never edited)."""
    broker = SQLiteBroker.from_url(f"sqlite:///{tmp_path / 'faena.db'}")
    try:
        broker.setup()
    finally:
        broker.close()
    with sqlite3.connect(tmp_path / "faena.db") as conn:
        rows = conn.execute("SELECT name, sql FROM sqlite_master WHERE sql IS NOT NULL")
        texts = dict(rows.fetchall())
    conn.close()
    assert drifted(texts) == []
    assert state_lists(texts["faena_jobs"]) == [_values(ALL)]  # the CHECK on state
    assert {items for text in texts.values() for items in state_lists(text)} >= {
        _values(PENDING),
        _values(HOLDS_IDEMPOTENCY_KEY),
    }
