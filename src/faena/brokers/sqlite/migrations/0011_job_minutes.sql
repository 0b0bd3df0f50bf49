-- faena SQLite schema, version 11: job_stats' per-minute series as counters (faena.core.stats).
--
-- One row per (minute, queue, series): succeeded, retried (a running job failing, or whose
-- lease ran out with attempts left: its try kept, unlike a release), dead and cancelled (a
-- live job ending so). The trigger counts in the very statement that changes the state, so
-- a finish fenced out (no row changed) counts nothing and a rolled-back one nothing either;
-- a retry by hand counts nothing (what the job then does counts). The minute is the store's
-- clock: the job's finished_at, or the time of the attempt record the statement appended.
-- Reading a window is a range of the primary key (minutes x queues x series rows), not a
-- range of finished jobs. prune() deletes the minutes before its older_than.
CREATE TABLE faena_job_minutes (
    minute REAL NOT NULL,
    queue  TEXT NOT NULL,
    series TEXT NOT NULL,
    n      INTEGER NOT NULL,
    PRIMARY KEY (minute, queue, series)
) WITHOUT ROWID;

CREATE TRIGGER faena_count_ends AFTER UPDATE OF state ON faena_jobs
WHEN (NEW.state IN ('succeeded', 'dead', 'cancelled')
      AND OLD.state NOT IN ('succeeded', 'dead', 'cancelled'))
  OR (OLD.state = 'running'
      AND (NEW.state = 'failed' OR (NEW.state = 'queued' AND NEW.tries >= OLD.tries)))
BEGIN
    INSERT INTO faena_job_minutes (minute, queue, series, n)
    VALUES (
        CAST(coalesce(CASE WHEN NEW.state IN ('succeeded', 'dead', 'cancelled')
                           THEN NEW.finished_at END,
                      json_extract(NEW.attempts, '$[#-1].f')) / 60 AS INTEGER) * 60,
        NEW.queue,
        CASE WHEN NEW.state IN ('succeeded', 'dead', 'cancelled') THEN NEW.state
             ELSE 'retried' END,
        1)
    ON CONFLICT (minute, queue, series) DO UPDATE SET n = n + 1;
END;

-- the jobs the store keeps, counted once by their state now (finished_at): the series go on
-- from there; no retried attempts before this version are counted
INSERT INTO faena_job_minutes (minute, queue, series, n)
SELECT CAST(finished_at / 60 AS INTEGER) * 60, queue, state, count(*) FROM faena_jobs
 WHERE state IN ('succeeded', 'dead', 'cancelled') AND finished_at IS NOT NULL
 GROUP BY 1, 2, 3;
