"""The Lua scripts: each state transition is one script, run atomically by Redis.

Every script is ``lua/lib.lua`` (shared rules) followed by its own entry file, prefixed with
the field layout from :mod:`codec`. They are registered with redis-py, which runs them by
SHA (``EVALSHA``) and loads them again when the server lost its script cache (``NOSCRIPT``,
e.g. after a restart).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib.resources import files
from typing import Any

from faena.brokers.redis.codec import lua_fields

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
    return f"{lua_fields()}{lib}\n-- {name}.lua\n{entry}"


@dataclass(frozen=True)
class Scripts:
    """The registered scripts of one client (``redis.commands.core.Script`` objects)."""

    by_name: dict[str, Any]

    @classmethod
    def register(cls, client: Any) -> Scripts:
        return cls({name: client.register_script(source(name)) for name in NAMES})

    def __getattr__(self, name: str) -> Any:
        try:
            return self.by_name[name]
        except KeyError:
            raise AttributeError(name) from None
