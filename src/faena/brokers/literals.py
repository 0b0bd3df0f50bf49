"""The state sets of :mod:`faena.core.states` as literals of the backends' languages.

The SQL and Lua texts never list states by hand: they name a set, and it is filled in when the
text is loaded (once, not per call). SQL (``queries.sql``, the SQLite statements) writes
``@pending@`` and gets ``('scheduled', 'queued', 'failed')``; Lua (``lua/*.lua``) writes
``STATES_PENDING`` and gets ``{ scheduled = true, queued = true, failed = true }``. The names
are the keys of :data:`faena.core.states.NAMED`. ``tests/unit/test_state_literals.py`` reads
the texts after filling in and fails on any list of states that is not one of those sets.

Migrations are not filled in: an applied migration is history and its text must not change
with the sets (a new state needs a new migration that changes the CHECK constraints).
"""

from __future__ import annotations

import re

from faena.core.states import NAMED, JobState, in_order


def sql_list(states: frozenset[JobState]) -> str:
    """``states`` as a parenthesised SQL list of text literals, in the enum's order."""
    return "(" + ", ".join(f"'{s.value}'" for s in in_order(states)) + ")"


def lua_set(states: frozenset[JobState]) -> str:
    """``states`` as a Lua table constructor used as a set."""
    return "{ " + ", ".join(f"{s.value} = true" for s in in_order(states)) + " }"


_SQL_MARK = re.compile(r"@([a-z_]+)@")
_LUA_MARK = re.compile(r"\bSTATES_([A-Z_]+)\b")


def fill_sql(text: str) -> str:
    """Replace each ``@<set>@`` naming a set of :data:`NAMED` (other ``@...@`` marks stay)."""
    return _SQL_MARK.sub(lambda m: sql_list(NAMED[m[1]]) if m[1] in NAMED else m[0], text)


def fill_lua(text: str, extra: dict[str, frozenset[JobState]] | None = None) -> str:
    """Replace each ``STATES_<SET>`` (a set of :data:`NAMED`, or of ``extra``: a backend's own)."""
    sets = {**NAMED, **(extra or {})}

    def one(match: re.Match[str]) -> str:
        name = match[1].lower()
        if name not in sets:
            raise ValueError(f"Lua refers to STATES_{match[1]}; the sets are {sorted(sets)}")
        return lua_set(sets[name])

    return _LUA_MARK.sub(one, text)
