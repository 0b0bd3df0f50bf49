-- faena PostgreSQL schema, version 10: schedules. One row per schedule: the last tick it fired
-- (POSIX seconds) and when it was recorded; Broker.fire_schedule moves last_tick forward
-- only (INSERT ... ON CONFLICT DO UPDATE ... WHERE, which waits on the row a concurrent
-- fire holds and then sees its tick), in the transaction that inserts the tick's jobs.

CREATE TABLE @schema@.schedules (
    name      text PRIMARY KEY,
    last_tick double precision NOT NULL,
    fired_at  double precision NOT NULL
);
