"""The broker contract runs against every backend; only these fixtures know the backends.

Each backend gets a fresh store per test (SQLite file, PostgreSQL schema, Redis key prefix)
and a :class:`ManualClock`, so leases expire by moving time, never by sleeping.
"""

from __future__ import annotations

import importlib.util
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from faena.brokers.protocol import Broker
from faena.brokers.url import open_broker
from faena.core.clock import Clock, ManualClock
from tests.conftest import PG_URL, REDIS_URL, need, port_open


@dataclass
class Backend:
    """How to reach one test store: ``url`` rebuilds it in another process."""

    name: str
    url: str | None  # None: not shareable across processes

    def open(self, clock: Clock) -> Broker:
        return open_broker(self.url or "memory://", clock=clock)


def _add_query(url: str, **params: str) -> str:
    sep = "&" if "?" in url else "?"
    return url + sep + "&".join(f"{k}={v}" for k, v in params.items())


def _memory(tmp_path: Path) -> Backend:
    return Backend("memory", None)


def _sqlite(tmp_path: Path) -> Backend:
    return Backend("sqlite", f"sqlite:///{tmp_path / 'faena.db'}")


def _postgres(tmp_path: Path) -> Backend:
    need(importlib.util.find_spec("faena.brokers.postgres") is not None, "no postgres broker")
    need(port_open("127.0.0.1", 5432), "PostgreSQL is not running on 127.0.0.1:5432")
    return Backend("postgres", _add_query(PG_URL, schema=f"t_{uuid.uuid4().hex[:12]}"))


def _redis(tmp_path: Path) -> Backend:
    need(importlib.util.find_spec("faena.brokers.redis") is not None, "no redis broker")
    need(port_open("127.0.0.1", 6379), "Redis is not running on 127.0.0.1:6379")
    return Backend("redis", _add_query(REDIS_URL, prefix=f"t{uuid.uuid4().hex[:12]}"))


BACKENDS: dict[str, Callable[[Path], Backend]] = {
    "memory": _memory,
    "sqlite": _sqlite,
    "postgres": _postgres,
    "redis": _redis,
}


@pytest.fixture(params=list(BACKENDS))
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    factory = BACKENDS[request.param]
    return factory(tmp_path)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def broker(backend: Backend, clock: ManualClock) -> Iterator[Broker]:
    b = backend.open(clock)
    b.setup()
    b.set_pools({"etl_pool": 24, "dq_pool": 8, "small": 3, "tiny": 1})
    yield b
    destroy = getattr(b, "destroy", None)
    if callable(destroy):
        destroy()
    b.close()
