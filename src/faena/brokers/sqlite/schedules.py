"""The SQLite broker's schedule ticks: the compare-and-set of the last tick and the insert
of the tick's jobs in one ``BEGIN IMMEDIATE`` transaction (``Broker.fire_schedule``)."""

from __future__ import annotations

from collections.abc import Sequence

from faena.brokers.protocol import ScheduleState
from faena.brokers.schedules import check_fire
from faena.brokers.sqlite.producing import write_jobs
from faena.brokers.sqlite.store import Store
from faena.brokers.sqlite.wake import Notifier
from faena.core.clock import Clock
from faena.core.job import Job, NewJob

#: moves the schedule's tick forward, or writes nothing (and returns no row) if the stored
#: tick is as new or newer: the compare-and-set
_ADVANCE = """
INSERT INTO faena_schedules (name, last_tick, fired_at) VALUES (?, ?, ?)
ON CONFLICT (name) DO UPDATE SET last_tick = excluded.last_tick, fired_at = excluded.fired_at
WHERE faena_schedules.last_tick < excluded.last_tick
RETURNING name
"""
_STATES = "SELECT name, last_tick, fired_at FROM faena_schedules ORDER BY name"


class SQLiteSchedules:
    _store: Store
    _clock: Clock
    _notifier: Notifier

    def fire_schedule(self, schedule: str, tick: float, jobs: Sequence[NewJob]) -> list[Job] | None:
        tick = check_fire(schedule, tick, jobs)
        with self._store.write(durable=True) as conn:
            now = self._clock.now()
            if conn.execute(_ADVANCE, (schedule, tick, now)).fetchone() is None:
                return None
            out = write_jobs(conn, jobs, now)  # an unknown pool raises: all rolled back
        if out:
            self._notifier.notify()
        return out

    def schedule_states(self) -> list[ScheduleState]:
        rows = self._store.read().execute(_STATES).fetchall()
        return [ScheduleState(str(n), float(t), float(f)) for n, t, f in rows]
