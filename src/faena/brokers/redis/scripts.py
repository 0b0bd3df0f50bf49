"""The Lua scripts: each state transition is one script, run atomically by Redis.

Every script is ``lua/lib.lua`` (shared rules) followed by its own entry file, prefixed with
the field layout from :mod:`codec`. The files are read with ``importlib.resources`` and
registered with redis-py (``register_script``), which gives each its SHA; they run by SHA
(``EVALSHA``) and are loaded again when the server has lost its script cache (``NOSCRIPT``,
e.g. after a restart): see :class:`faena.brokers.redis.connection.Link`.
"""

from __future__ import annotations

from functools import cache
from importlib.resources import files
from typing import Any

from faena.brokers.redis.codec import prepare_lua

NAMES = (
    "setup",
    "enqueue",
    "claim",
    "heartbeat",
    "finish",
    "finish_and_claim",
    "release",
    "reap",
    "retry",
    "cancel",
    "prune",
    "list",
    "stats",
)


@cache
def source(name: str) -> str:
    """The complete text of one script."""
    lua = files("faena.brokers.redis").joinpath("lua")
    lib = lua.joinpath("lib.lua").read_text(encoding="utf-8")
    entry = lua.joinpath(f"{name}.lua").read_text(encoding="utf-8")
    return prepare_lua(f"{lib}\n-- {name}.lua\n{entry}")


def register(client: Any) -> dict[str, Any]:
    """Every script as a redis-py ``Script`` (``.sha``, ``.script``), by name."""
    return {name: client.register_script(source(name)) for name in NAMES}
