"""Broker URLs: ``sqlite:///path``, ``memory://``, ``postgresql://...``, ``redis://...``."""

from __future__ import annotations

import importlib
import os
import re
from typing import TYPE_CHECKING
from urllib.parse import urlsplit, urlunsplit

from faena.core.clock import SYSTEM_CLOCK, Clock
from faena.errors import BrokerURLError

if TYPE_CHECKING:
    from faena.brokers.protocol import Broker

DEFAULT_BROKER_URL = "sqlite:///faena.db"
ENV_VAR = "FAENA_BROKER_URL"

_BACKENDS = {
    "memory": ("faena.brokers.memory", "MemoryBroker", None),
    "sqlite": ("faena.brokers.sqlite", "SQLiteBroker", None),
    "postgresql": ("faena.brokers.postgres", "PostgresBroker", "postgres"),
    "postgres": ("faena.brokers.postgres", "PostgresBroker", "postgres"),
    "redis": ("faena.brokers.redis", "RedisBroker", "redis"),
    "rediss": ("faena.brokers.redis", "RedisBroker", "redis"),
}


def resolve_url(url: str | None) -> str:
    return url or os.environ.get(ENV_VAR) or DEFAULT_BROKER_URL


def describe_url(url: str | None) -> str:
    """The broker URL to show in logs and messages: its password replaced by ``***`` (never
    printed) and, for SQLite, the file's absolute path (``sqlite:////abs/faena.db``)."""
    url = resolve_url(url)
    if "://" not in url:
        return url
    parts = urlsplit(url)
    if parts.scheme.lower() == "sqlite":
        path = parts.path[1:] if parts.path.startswith("/") else parts.path
        if path and path != ":memory:" and not parts.netloc:
            query = f"?{parts.query}" if parts.query else ""
            return f"sqlite:///{os.path.abspath(path)}{query}"
        return url
    if parts.query:  # libpq also takes ?password=...
        query = re.sub(r"(?i)(^|&)(password=)[^&]*", r"\1\2***", parts.query)
        parts = parts._replace(query=query)
    if parts.password is not None:
        user = parts.username or ""
        host = parts.hostname or ""
        if ":" in host:
            host = f"[{host}]"
        port = f":{parts.port}" if parts.port is not None else ""
        parts = parts._replace(netloc=f"{user}:***@{host}{port}")
    return urlunsplit(parts)


def open_broker(
    url: str | None = None, *, clock: Clock = SYSTEM_CLOCK, existing: bool = False
) -> Broker:
    """Build the broker a URL names (not yet set up: call ``setup()``). ``existing``: an
    SQLite file that does not exist is refused, not created (for every backend, ``App``
    asks ``exists()`` before ``setup()`` in that mode)."""
    url = resolve_url(url)
    scheme = urlsplit(url).scheme.lower() if "://" in url else ""
    if scheme not in _BACKENDS:
        raise BrokerURLError(
            f"broker URL {url!r} has an unknown scheme {scheme!r}; use one of "
            f"sqlite:///path/to/faena.db, postgresql://user@host/db, redis://host:6379/0 "
            f"(or memory:// inside one process)"
        )
    module_name, class_name, extra = _BACKENDS[scheme]
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        hint = f"pip install 'faena[{extra}]'" if extra else "reinstall faena"
        raise BrokerURLError(
            f"broker URL {url!r} needs a driver that is not installed ({exc}); {hint}"
        ) from exc
    cls = getattr(module, class_name)
    if scheme == "sqlite":
        broker: Broker = cls.from_url(url, clock=clock, existing=existing)
    else:
        broker = cls.from_url(url, clock=clock)
    return broker
