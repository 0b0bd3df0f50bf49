-- faena SQLite schema, version 3: paused queues. A claim (in its write transaction) and
-- next_run_at skip the queues named here; running jobs of a paused queue are not touched.
CREATE TABLE faena_paused_queues (
    queue     TEXT PRIMARY KEY,
    paused_at REAL NOT NULL
) WITHOUT ROWID;
