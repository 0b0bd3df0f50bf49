-- faena PostgreSQL schema, version 7: the worker registry. One row per worker process: its
-- last report (JSON, faena.brokers.registry) and when the store got it.

CREATE TABLE @schema@.workers (
    id      text PRIMARY KEY,
    seen_at double precision NOT NULL,
    report  text NOT NULL
);
