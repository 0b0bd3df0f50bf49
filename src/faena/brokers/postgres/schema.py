"""Creating and migrating a faena schema: numbered .sql files applied under an advisory lock."""

from __future__ import annotations

from importlib import resources

from faena.brokers.postgres.config import LOCK_CLASS_MIGRATE, PgConfig
from faena.brokers.postgres.database import Conn
from faena.brokers.postgres.queries import render
from faena.errors import SchemaError
from faena.version import __version__

VERSION_TABLE = "faena_schema_version"


def migrations() -> list[tuple[int, str]]:
    """``(version, sql)`` of every ``migrations/NNNN_name.sql``, in order."""
    folder = resources.files("faena.brokers.postgres") / "migrations"
    found = [
        (int(entry.name.split("_", 1)[0]), entry.read_text(encoding="utf-8"))
        for entry in folder.iterdir()
        if entry.name.endswith(".sql")
    ]
    return sorted(found)


SCHEMA_VERSION = max(v for v, _ in migrations())


def stored_version(conn: Conn, config: PgConfig) -> int | None:
    """The schema's version; ``None`` if the schema holds no tables at all.

    Raises :class:`SchemaError` if it holds tables but is not faena's.
    """
    tables = {
        row[0]
        for row in conn.execute(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname = %s AND c.relkind IN ('r', 'p', 'v', 'm', 'f')",
            (config.schema,),
        )
    }
    if not tables:
        return None
    if VERSION_TABLE not in tables:
        shown = ", ".join(sorted(tables)[:5])
        raise SchemaError(
            f"schema {config.schema!r} at {config.display_url} already holds tables that are "
            f"not faena's ({shown}); give faena a schema of its own with ?schema=NAME in the "
            f"broker URL (the default is ?schema=faena)"
        )
    row = conn.execute(f"SELECT max(version) FROM {config.quoted_schema}.{VERSION_TABLE}")
    found = row.fetchone()
    return 0 if found is None or found[0] is None else int(found[0])


def migrate(conn: Conn, config: PgConfig, *, upto: int = SCHEMA_VERSION) -> int:
    """Bring the schema to version ``upto`` (default :data:`SCHEMA_VERSION`; tests build older
    schemas with it); return the version it had (0: new)."""
    s = config.quoted_schema
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s, %s)", (LOCK_CLASS_MIGRATE, config.lock_key))
        version = stored_version(conn, config)
        if version is not None and version > SCHEMA_VERSION:
            raise SchemaError(
                f"schema {config.schema!r} at {config.display_url} is at version {version}, "
                f"written by a newer faena; this faena {__version__} supports versions up to "
                f"{SCHEMA_VERSION}: upgrade faena (pip install -U 'faena[postgres]')"
            )
        if version is None:
            conn.execute(f"CREATE SCHEMA IF NOT EXISTS {s}")
            conn.execute(
                f"CREATE TABLE {s}.{VERSION_TABLE} (version integer PRIMARY KEY,"
                " faena_version text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
            )
            version = 0
        for number, text in migrations():
            if number <= version or number > upto:
                continue
            conn.execute(render(text, config))
            conn.execute(
                f"INSERT INTO {s}.{VERSION_TABLE} (version, faena_version) VALUES (%s, %s)",
                (number, __version__),
            )
    return version


def drop(conn: Conn, config: PgConfig) -> None:
    conn.execute(f"DROP SCHEMA IF EXISTS {config.quoted_schema} CASCADE")
