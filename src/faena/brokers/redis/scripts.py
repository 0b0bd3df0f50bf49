"""The Lua library: each state transition is one Redis Function, run atomically by Redis.

``lua/lib.lua`` holds the shared rules; every other file of ``lua/`` is the body of one
function. They are put together, with the field layout from :mod:`codec`, into one Redis
Functions library (Redis 7.0 or newer), loaded with ``FUNCTION LOAD`` and called with
``FCALL``. Loading once means a call runs only its own body: the shared rules are not
compiled and run again on every call as they would be with ``EVAL``.

The library's name carries a digest of its text (``faena_<digest>``), and so do its
functions' names, so two faena versions can share one server during a rolling upgrade. A
server that has lost its functions (a restart without persistence, ``FUNCTION FLUSH``) gets
the library again on the first call that misses it: see
:class:`faena.brokers.redis.connection.Link`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cache
from importlib.resources import files

from faena.brokers.literals import fill_lua
from faena.brokers.redis.codec import prepare_lua
from faena.core import records, stats
from faena.core.attempts import MAX_ATTEMPTS_KEPT
from faena.core.states import JobState

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
    "next",
    "keys",
    "fire_schedule",
    "create_run",
    "runs",
    "retry_run",
    "note_run",
    "sample",
)
#: entries whose body is several files run one after the other (the first may return early)
_BODIES = {"fire_schedule": ("fire_schedule", "enqueue")}

_LIB = "@LIB@"

#: states whose jobs have an index of their own (a zset by enqueue sequence) for listings: a
#: layout of the stored data (changing it needs the indexes rebuilt), filled into the Lua as
#: STATES_INDEXED like the sets of faena.core.states
INDEXED = frozenset({JobState.FAILED, JobState.DEAD, JobState.CANCELLED})
#: states whose finished jobs are in job_stats' run and wait sample (faena.core.stats.RAN),
#: filled into the Lua as STATES_RAN
RAN = frozenset(stats.RAN)


@dataclass(frozen=True)
class Library:
    """The library's name, its complete text (for ``FUNCTION LOAD``) and function names."""

    name: str
    code: str

    def function(self, entry: str) -> str:
        """The registered name of one entry (``NAMES``)."""
        if entry not in NAMES:
            raise KeyError(f"no Lua entry {entry!r}; the entries are {', '.join(NAMES)}")
        return f"{self.name}_{entry}"


def _entry(name: str, body: str) -> str:
    return (
        f"-- {name}.lua\n"
        f"redis.register_function('{_LIB}_{name}', function(_, args)\n"
        f"begin(args)\n{body}\nend)\n"
    )


def _lua_string(text: str) -> str:
    if "]==]" in text:
        raise ValueError(f"cannot quote {text!r} as a Lua long string")
    return f"[==[{text}]==]"


def _corrupt_rules(text: str) -> str:
    """Fill in the message of a corrupt job and what each field must hold, from
    :mod:`faena.core.records` (one owner of the wording)."""
    expected = ", ".join(f"{name} = {_lua_string(what)}" for name, what in records.EXPECTED.items())
    return text.replace("CORRUPT_MESSAGE", _lua_string(records.MESSAGE_TEMPLATE)).replace(
        "CORRUPT_EXPECTED", "{ " + expected + " }"
    )


@cache
def library() -> Library:
    lua = files("faena.brokers.redis").joinpath("lua")
    parts = [lua.joinpath(f).read_text(encoding="utf-8") for f in ("lib.lua", "pipelines.lua")]
    for name in NAMES:
        files_ = _BODIES.get(name, (name,))
        body = "\n".join(lua.joinpath(f"{f}.lua").read_text(encoding="utf-8") for f in files_)
        parts.append(_entry(name, body))
    sets = {"indexed": INDEXED, "ran": RAN}
    text = prepare_lua(_corrupt_rules(fill_lua("\n".join(parts), sets)))
    text = text.replace("ATTEMPTS_KEPT", str(MAX_ATTEMPTS_KEPT))
    text = text.replace("STATS_KEEP_SECONDS", str(stats.KEEP_SECONDS))
    name = "faena_" + hashlib.sha1(text.encode("utf-8")).hexdigest()[:12]
    code = f"#!lua name={name}\n" + text.replace(_LIB, name)
    return Library(name, code)
