"""Finding the lists of job states written in SQL and Lua texts, to hold them to the sets of
:mod:`faena.core.states` (tests/unit/test_state_literals.py and the PostgreSQL one)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from faena.core.states import NAMED, JobState

STATE_NAMES = frozenset(state.value for state in JobState)

# a parenthesised SQL list of text literals: ('a', 'b')
_SQL_LIST = re.compile(r"\(\s*('[^'()]*'(?:\s*,\s*'[^'()]*')*)\s*\)")
# PostgreSQL's rendering of IN (...) in a constraint or index: ARRAY['a'::text, 'b'::text]
_PG_ARRAY = re.compile(r"ARRAY\[([^\]]*)\]")
# a Lua table used as a set: { a = true, b = true }
_LUA_SET = re.compile(r"\{\s*(\w+\s*=\s*true(?:\s*,\s*\w+\s*=\s*true)*)\s*,?\s*\}")
# one state compared or written: state = 'x', state <> 'x' (SQL; also a Lua assignment),
# I.state, 'x' (Lua's put), r[I.state] ~= 'x', HSET ... 'state', 'x'
_ONE_STATE = re.compile(
    r"(?:\bstate\s*(?:=|<>|!=)\s*|I\.state,\s*|I\.state\]\s*[~=]=\s*"
    r"|'HSET',\s*[^,]+,\s*'state',\s*)'(\w+)'"
)


def state_lists(text: str) -> list[frozenset[str]]:
    """Every list in ``text`` (SQL, PostgreSQL's rendering of it, or Lua) that names a state."""
    found: list[list[str]] = []
    for match in _SQL_LIST.finditer(text):
        found.append(re.findall(r"'([^']*)'", match[1]))
    for match in _PG_ARRAY.finditer(text):
        found.append(re.findall(r"'([^']*)'", match[1]))
    for match in _LUA_SET.finditer(text):
        found.append(re.findall(r"(\w+)\s*=\s*true", match[1]))
    return [frozenset(items) for items in found if STATE_NAMES & set(items)]


def single_states(text: str) -> set[str]:
    """The states ``text`` compares a state with, or writes, one at a time."""
    return set(_ONE_STATE.findall(text))


def drifted(
    texts: Mapping[str, str], extra: Iterable[frozenset[JobState]] = ()
) -> list[tuple[str, list[str]]]:
    """The lists (by text name) that are not a set of ``faena.core.states.NAMED`` (nor one of
    ``extra``), and the single states that are not states at all."""
    allowed = {frozenset(s.value for s in states) for states in (*NAMED.values(), *extra)}
    bad = []
    for name, text in texts.items():
        for items in state_lists(text):
            if items not in allowed:
                bad.append((name, sorted(items)))
        for one in sorted(single_states(text) - STATE_NAMES):
            bad.append((name, [one]))
    return bad
