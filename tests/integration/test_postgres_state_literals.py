"""The state lists of a migrated PostgreSQL schema (its CHECK constraint, partial indexes and
PL/pgSQL functions, written by migrations that are history and never edited) are the sets of
``faena.core.states``: a new state, or a set that changes, needs a migration that rewrites
them, and this test says which ones."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from tests.conftest import PG_URL, need, port_open
from tests.state_lists import drifted, state_lists

from faena.brokers.postgres.config import PgConfig
from faena.brokers.postgres.schema import migrate
from faena.core.states import ALL, HOLDS_IDEMPOTENCY_KEY, LIVE, PENDING, TERMINAL, JobState

pytestmark = pytest.mark.postgres


def _values(states: frozenset[JobState]) -> frozenset[str]:
    return frozenset(s.value for s in states)


@pytest.fixture
def conn() -> Iterator[tuple[psycopg.Connection[Any], PgConfig]]:
    need(port_open("127.0.0.1", 5432), "PostgreSQL is not running on 127.0.0.1:5432")
    cfg = PgConfig.parse(f"{PG_URL}{'&' if '?' in PG_URL else '?'}schema=t_{uuid.uuid4().hex[:12]}")
    with psycopg.connect(cfg.conninfo, autocommit=True) as c:
        migrate(c, cfg)
        try:
            yield c, cfg
        finally:
            c.execute(f"DROP SCHEMA IF EXISTS {cfg.quoted_schema} CASCADE")


def test_the_migrated_schema_lists_only_core_sets(
    conn: tuple[psycopg.Connection[Any], PgConfig],
) -> None:
    c, cfg = conn
    check = c.execute(
        "SELECT pg_get_constraintdef(k.oid) FROM pg_constraint k"
        " JOIN pg_namespace n ON n.oid = k.connamespace"
        " WHERE n.nspname = %s AND k.conname = 'jobs_state_check'",
        (cfg.schema,),
    ).fetchall()
    assert len(check) == 1
    # a new state needs a migration that replaces this constraint
    assert state_lists(check[0][0]) == [_values(ALL)]

    indexes = dict(
        c.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = %s", (cfg.schema,)
        ).fetchall()
    )
    functions = {
        f"{name}#{n}": body
        for n, (name, body) in enumerate(
            c.execute(
                "SELECT p.proname, p.prosrc FROM pg_proc p"
                " JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = %s",
                (cfg.schema,),
            ).fetchall()
        )
    }
    texts = {**indexes, **functions}
    assert drifted(texts) == []
    found = {items for text in texts.values() for items in state_lists(text)}
    assert found >= {_values(PENDING), _values(HOLDS_IDEMPOTENCY_KEY), _values(TERMINAL)}
    assert found <= {_values(s) for s in (PENDING, HOLDS_IDEMPOTENCY_KEY, TERMINAL, LIVE)}
