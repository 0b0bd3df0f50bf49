-- faena SQLite schema, version 1
CREATE TABLE faena_meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE faena_jobs (
    seq              INTEGER PRIMARY KEY,  -- rowid: enqueue order (no AUTOINCREMENT: one write less)
    id               TEXT    NOT NULL UNIQUE,
    task             TEXT    NOT NULL,
    queue            TEXT    NOT NULL,
    args             TEXT    NOT NULL,
    kwargs           TEXT    NOT NULL,
    state            TEXT    NOT NULL CHECK (state IN
                       ('scheduled', 'queued', 'running', 'succeeded', 'failed', 'dead', 'cancelled')),
    priority         INTEGER NOT NULL DEFAULT 0,
    pool             TEXT    NOT NULL,
    pool_slots       INTEGER NOT NULL DEFAULT 1 CHECK (pool_slots >= 1),
    attempt          INTEGER NOT NULL DEFAULT 0,
    tries            INTEGER NOT NULL DEFAULT 0,
    max_attempts     INTEGER NOT NULL,
    timeout          REAL,
    idempotency_key  TEXT,
    enqueued_at      REAL    NOT NULL,
    run_at           REAL    NOT NULL,
    started_at       REAL,
    finished_at      REAL,
    lease_expires_at REAL,
    worker           TEXT,
    result           TEXT,
    error_type       TEXT,
    error_message    TEXT,
    error_traceback  TEXT,
    cancel_requested INTEGER NOT NULL DEFAULT 0
);

-- the claim path: runnable jobs of a queue by priority, then enqueue order
CREATE INDEX faena_jobs_ready ON faena_jobs (queue, priority DESC, seq)
    WHERE state IN ('scheduled', 'queued', 'failed');
-- leases, for reaping and for counting slots in use
CREATE INDEX faena_jobs_running ON faena_jobs (lease_expires_at)
    WHERE state = 'running';
-- one live job per idempotency key
CREATE UNIQUE INDEX faena_jobs_idempotency ON faena_jobs (idempotency_key)
    WHERE idempotency_key IS NOT NULL
      AND state IN ('scheduled', 'queued', 'running', 'succeeded', 'failed');
-- finished jobs, for counting by state and for pruning; no index covers every state, so a
-- job's claim and completion each touch as few index pages as possible
CREATE INDEX faena_jobs_finished ON faena_jobs (state, finished_at, queue)
    WHERE finished_at IS NOT NULL;

CREATE TABLE faena_pools (
    name TEXT PRIMARY KEY,
    size INTEGER NOT NULL CHECK (size >= 0)
);

CREATE TABLE faena_settings (
    key   TEXT PRIMARY KEY,
    value INTEGER
);
