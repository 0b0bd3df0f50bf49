"""Jobs whose stored counts PostgreSQL cannot add one to.

The typed columns refuse most damage (an integer column cannot hold 'abc', state has a
CHECK), but a count set by hand to 2147483647 makes ``attempt + 1`` overflow in the claim,
and the whole claim failed, every time. When the exchange fails so, such jobs are made dead
by themselves (:mod:`faena.core.records`) and the exchange runs again: it was one
statement, rolled back whole, so nothing of it was written.
"""

from __future__ import annotations

from typing import Any

from faena.core import records


def bury_overflowing(conn: Any, overflowing: str, bury: str, now: float) -> int:
    """Make the live jobs holding a count at the limit dead, in one transaction; how many."""
    limit = records.COUNT_LIMIT
    with conn.transaction():
        found = conn.execute(overflowing, {"limit": limit}).fetchall()
        for job_id, attempt, tries, slots in found:
            counts = {"attempt": attempt, "tries": tries, "pool_slots": slots}
            field, value = records.unreadable(counts) or ("attempt", attempt)
            error = records.corrupt_error(job_id, field, value)
            params = {"etype": error.type, "emsg": error.message, "now": now, "limit": limit}
            conn.execute(bury, {**params, "id": job_id})
    return len(found)
