"""On PostgreSQL and Redis too, the commands that read or act on jobs never create a store:
a schema or key prefix that holds no faena data is refused, and stays empty."""

from __future__ import annotations

import importlib.util
import uuid

import pytest
from click.testing import CliRunner
from tests.conftest import PG_URL, REDIS_URL, need, port_open

from faena.cli.main import cli

COMMANDS = [["jobs", "list"], ["pools"], ["queues"], ["queues", "pause", "etl"]]


def _with(url: str, **params: str) -> str:
    sep = "&" if "?" in url else "?"
    return url + sep + "&".join(f"{k}={v}" for k, v in params.items())


@pytest.mark.postgres
@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_a_missing_postgres_schema_is_refused_and_not_created(command: list[str]) -> None:
    need(importlib.util.find_spec("psycopg") is not None, "psycopg is not installed")
    need(port_open("127.0.0.1", 5432), "PostgreSQL is not running on 127.0.0.1:5432")
    import psycopg

    schema = f"t_{uuid.uuid4().hex[:12]}"
    done = CliRunner().invoke(cli, [*command, "--broker", _with(PG_URL, schema=schema)])
    assert done.exit_code != 0
    assert "no faena store at" in done.output and schema in done.output
    with psycopg.connect(PG_URL) as conn:
        found = conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (schema,))
        assert found.fetchone() is None


@pytest.mark.redis
@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_a_missing_redis_prefix_is_refused_and_not_created(command: list[str]) -> None:
    need(importlib.util.find_spec("redis") is not None, "redis-py is not installed")
    need(port_open("127.0.0.1", 6379), "Redis is not running on 127.0.0.1:6379")
    import redis

    prefix = f"t{uuid.uuid4().hex[:12]}"
    done = CliRunner().invoke(cli, [*command, "--broker", _with(REDIS_URL, prefix=prefix)])
    assert done.exit_code != 0
    assert "no faena store at" in done.output
    assert redis.Redis.from_url(REDIS_URL).keys(f"{{{prefix}}}*") == []
