"""The PostgreSQL broker's schedule ticks: the compare-and-set of the last tick and the
insert of the tick's jobs in one transaction (``Broker.fire_schedule``).

Two transactions firing one tick: the second's ``INSERT ... ON CONFLICT DO UPDATE`` waits
on the row the first wrote, then (READ COMMITTED re-reads the committed row) finds its
``WHERE`` false and writes nothing: no row returned, no jobs inserted. A transaction that
dies part-way is rolled back whole.
"""

from __future__ import annotations

from collections.abc import Sequence

from faena.brokers.postgres.database import Conn
from faena.brokers.postgres.producing import PostgresProducer
from faena.brokers.postgres.queries import render
from faena.brokers.protocol import ScheduleState
from faena.brokers.schedules import check_fire
from faena.core.job import Job, NewJob

_ADVANCE = """
INSERT INTO @schema@.schedules AS s (name, last_tick, fired_at)
VALUES (%(name)s, %(tick)s, %(now)s)
ON CONFLICT (name) DO UPDATE SET last_tick = excluded.last_tick, fired_at = excluded.fired_at
WHERE s.last_tick < excluded.last_tick
RETURNING name
"""
_STATES = "SELECT name, last_tick, fired_at FROM @schema@.schedules ORDER BY name"


class PostgresSchedules(PostgresProducer):
    def fire_schedule(self, schedule: str, tick: float, jobs: Sequence[NewJob]) -> list[Job] | None:
        tick = check_fire(schedule, tick, jobs)
        advance = render(_ADVANCE, self.config)

        def run(conn: Conn) -> list[Job] | None:
            with conn.transaction():
                params = {"name": schedule, "tick": tick, "now": self._clock.now()}
                if conn.execute(advance, params).fetchone() is None:
                    return None
                return self._enqueue(conn, jobs) if jobs else []

        return self._db.run("fire_schedule", run)

    def schedule_states(self) -> list[ScheduleState]:
        sql = render(_STATES, self.config)
        rows = self._db.run("schedule_states", lambda c: c.execute(sql).fetchall())
        return [ScheduleState(str(r[0]), float(r[1]), float(r[2])) for r in rows]
