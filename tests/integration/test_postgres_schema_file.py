"""``src/faena/brokers/postgres/schema.sql`` is the schema the migrations build, as the server
describes it: tables, constraints, indexes and functions of a freshly migrated schema.

The migrations stay the source (they upgrade stores in place); this file is for reading the
current schema in one place. After adding a migration, write it anew with
``FAENA_WRITE_SCHEMA=1 .venv/bin/pytest tests/integration/test_postgres_schema_file.py``.
"""

from __future__ import annotations

import importlib.util
import os
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from tests.conftest import PG_URL, need, port_open

if TYPE_CHECKING:
    from faena.brokers.postgres.config import PgConfig

pytestmark = pytest.mark.postgres

SCHEMA_FILE = (
    Path(__file__).resolve().parents[2] / "src" / "faena" / "brokers" / "postgres" / "schema.sql"
)
HEADER = """\
-- The current faena PostgreSQL schema, as a freshly migrated store has it (generated from the
-- server's catalog by tests/integration/test_postgres_schema_file.py, which checks it; write
-- it anew with FAENA_WRITE_SCHEMA=1). The source of truth is migrations/: faena applies those,
-- never this file. @schema@ stands for the schema's name (?schema= in the broker URL).
"""


def describe(conn: Any, config: PgConfig) -> str:
    """The schema's tables, constraints, indexes and functions as DDL, in a stable order, with
    the migrations' placeholders in place of what they became for this schema."""
    schema = config.schema

    def rows(sql: str, *params: object) -> list[tuple[Any, ...]]:
        return list(conn.execute(sql, params).fetchall())

    out = [HEADER]
    tables = [
        r[0]
        for r in rows(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname = %s AND c.relkind IN ('r', 'p') ORDER BY c.relname",
            schema,
        )
    ]
    for table in tables:
        columns = rows(
            "SELECT a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull,"
            " pg_get_expr(d.adbin, d.adrelid)"
            " FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid"
            " JOIN pg_namespace n ON n.oid = c.relnamespace"
            " LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum"
            " WHERE n.nspname = %s AND c.relname = %s AND a.attnum > 0 AND NOT a.attisdropped"
            " ORDER BY a.attnum",
            schema,
            table,
        )
        constraints = rows(
            "SELECT con.conname, pg_get_constraintdef(con.oid) FROM pg_constraint con"
            " JOIN pg_class c ON c.oid = con.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname = %s AND c.relname = %s ORDER BY con.conname",
            schema,
            table,
        )
        lines = [
            f"    {name} {kind}"
            + (" NOT NULL" if not_null else "")
            + (f" DEFAULT {default}" if default is not None else "")
            for name, kind, not_null, default in columns
        ]
        lines += [f"    CONSTRAINT {name} {definition}" for name, definition in constraints]
        out.append(f"CREATE TABLE @schema@.{table} (\n" + ",\n".join(lines) + "\n);\n")
    for (definition,) in rows(
        "SELECT indexdef FROM pg_indexes WHERE schemaname = %s ORDER BY tablename, indexname",
        schema,
    ):
        out.append(definition + ";\n")
    for (definition,) in rows(
        "SELECT pg_get_functiondef(p.oid) FROM pg_proc p"
        " JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = %s"
        " ORDER BY p.proname, pg_get_function_identity_arguments(p.oid)",
        schema,
    ):
        out.append(definition.rstrip() + ";\n")
    from faena.brokers.postgres.config import LOCK_CLASS_CLAIM, LOCK_CLASS_FOLD

    text = "\n".join(out)
    for value, placeholder in (
        (f"{LOCK_CLASS_CLAIM}, {config.lock_key}", "@claim_lock@"),
        (f"{LOCK_CLASS_FOLD}, {config.lock_key}", "@fold_lock@"),
        (config.channel, "@channel@"),
        (config.quoted_schema, "@schema@"),
        (schema, "@schema@"),
    ):
        text = text.replace(value, placeholder)
    return text


def test_schema_file_is_what_the_migrations_build() -> None:
    need(importlib.util.find_spec("psycopg") is not None, "psycopg is not installed")
    need(port_open("127.0.0.1", 5432), "PostgreSQL is not running on 127.0.0.1:5432")
    import psycopg

    from faena.brokers.postgres import PostgresBroker
    from faena.brokers.postgres.config import PgConfig

    url = f"{PG_URL}{'&' if '?' in PG_URL else '?'}schema=t_{uuid.uuid4().hex[:12]}"
    broker = PostgresBroker.from_url(url)
    try:
        broker.setup()
        with psycopg.connect(PG_URL, autocommit=True) as conn:
            text = describe(conn, PgConfig.parse(url))
    finally:
        broker.destroy()
        broker.close()
    if os.environ.get("FAENA_WRITE_SCHEMA") == "1":
        SCHEMA_FILE.write_text(text, encoding="utf-8")
    assert SCHEMA_FILE.read_text(encoding="utf-8") == text, (
        "schema.sql is not what the migrations build: write it anew with "
        "FAENA_WRITE_SCHEMA=1 .venv/bin/pytest tests/integration/test_postgres_schema_file.py"
    )
