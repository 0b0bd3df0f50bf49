-- faena PostgreSQL schema, version 15: count_by_state and queue_stats independent of the
-- number of jobs.
--
-- job_counts holds the number of jobs per (queue, state), as signed deltas per writing
-- backend (shard = pg_backend_pid()); the count of a (queue, state) is the sum of its
-- shards. Three statement-level triggers with transition tables keep it, in the very
-- statement that inserts, changes or deletes jobs (a fourth empties it on TRUNCATE): one
-- upsert per statement, grouped by (queue, state), so every path (enqueue and COPY, the
-- claim and the finish of exchange, reap, release, retry, cancel, the bulk ones, bury,
-- prune, the pipelines' hand-off, schedules) is counted without any of them naming the
-- counters, and a statement that changes no row, or is rolled back, counts nothing. No two
-- open transactions ever write one counter row (a backend runs one transaction at a time,
-- and writes its own shard only), so two workers never wait for each other on a counter and
-- a counter never takes part in a deadlock. The shards of backends that are gone are added
-- up into shard 0 by fold_counts() (prune(), and a count_by_state that saw more than 32
-- shards of one count): one fold at a time (a try of an advisory lock: a second one does
-- nothing), and it skips rows with SKIP LOCKED, so it never waits on a worker.
--
-- queue_stats' split of the waiting jobs into due now and later, and the oldest due one's
-- age, cannot be a counter (they move with the clock): they are read from jobs_due, the
-- waiting jobs by (queue, run_at): per queue, a range of the later ones and the first entry.
--
-- The jobs the store holds are counted once, here (shard 0; no backend's pid is 0), after the
-- triggers are created: CREATE TRIGGER holds the table against writes until commit.

CREATE TABLE @schema@.job_counts (
    queue text NOT NULL,
    state text NOT NULL,
    shard integer NOT NULL,
    n     bigint NOT NULL,
    PRIMARY KEY (queue, state, shard)
) WITH (fillfactor = 50);

CREATE INDEX jobs_due ON @schema@.jobs (queue, run_at)
    WHERE state IN ('scheduled', 'queued', 'failed');

CREATE FUNCTION @schema@.count_inserted() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO @schema@.job_counts AS c (queue, state, shard, n)
    SELECT w.queue, w.state, pg_backend_pid(), count(*) FROM new_jobs w GROUP BY 1, 2
    ON CONFLICT (queue, state, shard) DO UPDATE SET n = c.n + excluded.n;
    RETURN NULL;
END
$$;

CREATE FUNCTION @schema@.count_updated() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    -- a statement that changes no state (a heartbeat, a cancel request) nets out to nothing
    INSERT INTO @schema@.job_counts AS c (queue, state, shard, n)
    SELECT d.queue, d.state, pg_backend_pid(), sum(d.n)
      FROM (SELECT o.queue, o.state, -1 AS n FROM old_jobs o
            UNION ALL
            SELECT w.queue, w.state, 1 FROM new_jobs w) d
     GROUP BY 1, 2
    HAVING sum(d.n) <> 0
    ON CONFLICT (queue, state, shard) DO UPDATE SET n = c.n + excluded.n;
    RETURN NULL;
END
$$;

CREATE FUNCTION @schema@.count_deleted() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO @schema@.job_counts AS c (queue, state, shard, n)
    SELECT o.queue, o.state, pg_backend_pid(), -count(*) FROM old_jobs o GROUP BY 1, 2
    ON CONFLICT (queue, state, shard) DO UPDATE SET n = c.n + excluded.n;
    RETURN NULL;
END
$$;

CREATE TRIGGER jobs_count_inserted AFTER INSERT ON @schema@.jobs
    REFERENCING NEW TABLE AS new_jobs
    FOR EACH STATEMENT EXECUTE FUNCTION @schema@.count_inserted();

CREATE TRIGGER jobs_count_updated AFTER UPDATE ON @schema@.jobs
    REFERENCING OLD TABLE AS old_jobs NEW TABLE AS new_jobs
    FOR EACH STATEMENT EXECUTE FUNCTION @schema@.count_updated();

CREATE TRIGGER jobs_count_deleted AFTER DELETE ON @schema@.jobs
    REFERENCING OLD TABLE AS old_jobs
    FOR EACH STATEMENT EXECUTE FUNCTION @schema@.count_deleted();

-- TRUNCATE (no row trigger sees it) leaves no job: no count either. It holds the jobs table
-- exclusively, so no writer of a counter is open on it.
CREATE FUNCTION @schema@.count_truncated() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM @schema@.job_counts;
    RETURN NULL;
END
$$;

CREATE TRIGGER jobs_count_truncated AFTER TRUNCATE ON @schema@.jobs
    FOR EACH STATEMENT EXECUTE FUNCTION @schema@.count_truncated();

-- the shards of backends that are gone, added up into shard 0; how many rows were folded.
-- A row some transaction holds (a backend that took a gone one's pid, writing it now) is
-- skipped: a fold never waits on a worker. Only folds write shard 0, one at a time (the try
-- of a transaction advisory lock; a fold that does not get it does nothing), so a fold
-- waits on nothing and takes part in no deadlock.
CREATE FUNCTION @schema@.fold_counts() RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    v_folded bigint;
BEGIN
    IF NOT pg_try_advisory_xact_lock(@fold_lock@) THEN
        RETURN 0;
    END IF;
    WITH gone AS (
        DELETE FROM @schema@.job_counts c
         WHERE (c.queue, c.state, c.shard) IN (
                SELECT k.queue, k.state, k.shard FROM @schema@.job_counts k
                 WHERE k.shard <> 0
                   AND NOT EXISTS (SELECT 1 FROM pg_stat_activity a WHERE a.pid = k.shard)
                   FOR UPDATE SKIP LOCKED)
        RETURNING c.queue, c.state, c.n
    ), added AS (
        INSERT INTO @schema@.job_counts AS c (queue, state, shard, n)
        SELECT g.queue, g.state, 0, sum(g.n) FROM gone g GROUP BY 1, 2 ORDER BY 1, 2
        ON CONFLICT (queue, state, shard) DO UPDATE SET n = c.n + excluded.n
        RETURNING 1
    )
    SELECT (SELECT count(*) FROM gone) INTO v_folded;
    -- a (queue, state) without jobs left keeps no row in shard 0
    DELETE FROM @schema@.job_counts c WHERE c.shard = 0 AND c.n = 0;
    RETURN v_folded;
END
$$;

INSERT INTO @schema@.job_counts (queue, state, shard, n)
SELECT queue, state, 0, count(*) FROM @schema@.jobs GROUP BY 1, 2;
