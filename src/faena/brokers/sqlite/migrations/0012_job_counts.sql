-- faena SQLite schema, version 12: count_by_state and queue_stats independent of the number
-- of jobs.
--
-- faena_job_counts holds the number of jobs per (queue, state). Row triggers keep it in the
-- statement that inserts a job, changes its state or deletes it, so every path (enqueue, the
-- claim and the finish, reap, release, retry, cancel, the bulk ones, bury, prune, the
-- pipelines' hand-off, schedules) is counted without naming the counters, and a change
-- rolled back is not counted. SQLite has one writer at a time: one row per (queue, state).
--
-- queue_stats' split of the waiting jobs into due now and later, and the oldest due one's
-- age, move with the clock: they are read from faena_jobs_due, the waiting jobs by (queue,
-- run_at): per queue, a range of the later entries and the first one (state is in the
-- index so that the statement's own test of it reads no table row).
--
-- The jobs the store holds are counted once, here.
CREATE TABLE faena_job_counts (
    queue TEXT NOT NULL,
    state TEXT NOT NULL,
    n     INTEGER NOT NULL,
    PRIMARY KEY (queue, state)
) WITHOUT ROWID;

CREATE INDEX faena_jobs_due ON faena_jobs (queue, run_at, state)
    WHERE state IN ('scheduled', 'queued', 'failed');

CREATE TRIGGER faena_count_inserted AFTER INSERT ON faena_jobs
BEGIN
    INSERT INTO faena_job_counts (queue, state, n) VALUES (NEW.queue, NEW.state, 1)
    ON CONFLICT (queue, state) DO UPDATE SET n = n + 1;
END;

CREATE TRIGGER faena_count_moved AFTER UPDATE OF state, queue ON faena_jobs
WHEN OLD.state IS NOT NEW.state OR OLD.queue IS NOT NEW.queue
BEGIN
    INSERT INTO faena_job_counts (queue, state, n)
    VALUES (OLD.queue, OLD.state, -1), (NEW.queue, NEW.state, 1)
    ON CONFLICT (queue, state) DO UPDATE SET n = n + excluded.n;
END;

CREATE TRIGGER faena_count_deleted AFTER DELETE ON faena_jobs
BEGIN
    UPDATE faena_job_counts SET n = n - 1 WHERE queue = OLD.queue AND state = OLD.state;
END;

INSERT INTO faena_job_counts (queue, state, n)
SELECT queue, state, count(*) FROM faena_jobs GROUP BY queue, state;
