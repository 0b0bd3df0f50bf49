-- faena SQLite schema, version 6: schedules. One row per schedule: the last tick it fired
-- (POSIX seconds) and when it was recorded; Broker.fire_schedule moves last_tick forward
-- only, in the transaction that inserts the tick's jobs.
CREATE TABLE faena_schedules (
    name      TEXT PRIMARY KEY,
    last_tick REAL NOT NULL,
    fired_at  REAL NOT NULL
) WITHOUT ROWID;
