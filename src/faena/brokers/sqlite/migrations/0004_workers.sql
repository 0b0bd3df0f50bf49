-- faena SQLite schema, version 4: the worker registry. One row per worker process: its last
-- report (JSON, faena.brokers.registry) and when the store got it.
CREATE TABLE faena_workers (
    id      TEXT PRIMARY KEY,
    seen_at REAL NOT NULL,
    report  TEXT NOT NULL
) WITHOUT ROWID;
