-- faena PostgreSQL schema, version 14: job_stats' per-minute series as counters
-- (faena.core.stats): attempts that succeeded, that failed or were lost with attempts left
-- (retried), jobs ended dead, jobs cancelled.
--
-- They are counted where the attempt ends, in the statement that writes the end: the finish
-- of exchange and the reap (below, as in versions 13 and 8 with one more CTE each), and a
-- waiting job ending (a cancel, a pipeline step skipped, a damaged job buried) by the row
-- trigger jobs_count_end. An outcome fenced out changes no row and counts nothing; one rolled
-- back is not counted either. A retry by hand counts nothing (what the job then does counts).
--
-- Rows are (minute, queue, series, shard) with shard the writing backend's pid: no two open
-- transactions ever write one row, so workers finishing at once never wait for each other on
-- a counter (one row per minute would serialise every finish on its lock until commit), and
-- a counter never takes part in a deadlock. job_stats sums the shards of the window, a range
-- of the primary key: minutes x queues x series, times the connections that finished jobs in
-- each minute until prune() folds a finished minute's shards into shard 0 (queries.sql
-- fold_minutes); prune() also deletes the minutes before its older_than.
--
-- The jobs the store holds are counted once, here, by their state now (finished_at, shard 0,
-- no pid is 0): the series go on from there; retried attempts before this version are not.

CREATE TABLE @schema@.job_minutes (
    minute double precision NOT NULL,
    queue  text NOT NULL,
    series text NOT NULL,
    shard  integer NOT NULL,
    n      bigint NOT NULL,
    PRIMARY KEY (minute, queue, series, shard)
) WITH (fillfactor = 50);

INSERT INTO @schema@.job_minutes (minute, queue, series, shard, n)
SELECT floor(finished_at / 60) * 60, queue, state, 0, count(*) FROM @schema@.jobs
 WHERE state IN ('succeeded', 'dead', 'cancelled') AND finished_at IS NOT NULL
 GROUP BY 1, 2, 3;

-- a waiting job that ends (running ones are counted by exchange and reap, and by bury)
CREATE FUNCTION @schema@.count_end() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO @schema@.job_minutes AS m (minute, queue, series, shard, n)
    VALUES (floor(NEW.finished_at / 60) * 60, NEW.queue, NEW.state, pg_backend_pid(), 1)
    ON CONFLICT (minute, queue, series, shard) DO UPDATE SET n = m.n + 1;
    RETURN NULL;
END
$$;

CREATE TRIGGER jobs_count_end AFTER UPDATE OF state ON @schema@.jobs
    FOR EACH ROW WHEN (OLD.state IN ('scheduled', 'queued', 'failed')
                       AND NEW.state IN ('succeeded', 'dead', 'cancelled')
                       AND NEW.finished_at IS NOT NULL)
    EXECUTE FUNCTION @schema@.count_end();

CREATE OR REPLACE FUNCTION @schema@.exchange_ignoring_pauses(
    p_done json, p_worker text, p_queues text[], p_limit integer, p_lease double precision,
    p_now double precision, p_tell_saturated boolean)
RETURNS SETOF @schema@.job_event
LANGUAGE plpgsql VOLATILE
SET plan_cache_mode = force_generic_plan SET enable_bitmapscan = off
SET enable_hashjoin = off SET enable_mergejoin = off AS $$
DECLARE
    v_names   text[];
    v_free0   integer[];
    v_open    text[];
    v_cap     integer;
    v_busy    integer;
    v_free    integer[];
    v_par     integer;
    v_ids     text[];
    v_take    integer;
    v_seen    integer;
    v_i       integer;
    v_first   text;
    v_pool    text;
    v_slots   integer;
    v_expired boolean;
    v_locked  boolean;
    v_blocked boolean := false;
    c         refcursor;
    r         record;
BEGIN
    IF p_done IS NOT NULL THEN
        IF p_done::jsonb @> '[{"state": "failed"}]' THEN
            PERFORM pg_notify('@channel@', '');
        END IF;
        IF NOT EXISTS (SELECT 1 FROM json_array_elements(p_done) AS e(value)
                        WHERE e.value ->> 'state' <> 'succeeded') THEN
            -- successes only (the common path): the statement of version 7, no history
            -- write (the row keeps a success; get() reads its record off the row)
            RETURN QUERY
        WITH f AS (
        UPDATE @schema@.jobs j SET
            state = o.state,
            max_attempts = coalesce(o.max_attempts, j.max_attempts),
            run_at = CASE WHEN o.state = 'failed' THEN coalesce(o.retry_at, p_now)
                          ELSE j.run_at END,
            worker = CASE WHEN o.state = 'failed' THEN NULL ELSE j.worker END,
            result_json = CASE WHEN o.state = 'failed' THEN j.result_json ELSE o.result END,
            error_type = CASE WHEN o.state = 'failed' OR o.etype IS NOT NULL
                              THEN o.etype ELSE j.error_type END,
            error_message = CASE WHEN o.state = 'failed' OR o.etype IS NOT NULL
                                 THEN o.emsg ELSE j.error_message END,
            error_traceback = CASE WHEN o.state = 'failed' OR o.etype IS NOT NULL
                                   THEN o.etb ELSE j.error_traceback END,
            finished_at = CASE WHEN o.state = 'failed' THEN j.finished_at ELSE p_now END,
            lease_expires_at = NULL
        FROM ROWS FROM (json_to_recordset(p_done) AS (
                 id text, attempt integer, state text, result text, etype text, emsg text,
                 etb text, retry_at double precision, max_attempts integer))
             WITH ORDINALITY AS o(id, attempt, state, result, etype, emsg, etb, retry_at,
                                  max_attempts, ord)
        WHERE j.id = o.id AND j.attempt = o.attempt AND j.state = 'running'
            RETURNING o.ord, j.queue
        ), c AS (
            -- version 14: the successes counted in this statement (faena.core.stats)
            INSERT INTO @schema@.job_minutes AS m (minute, queue, series, shard, n)
            SELECT floor(p_now / 60) * 60, f.queue, 'succeeded', pg_backend_pid(), count(*)
              FROM f GROUP BY f.queue
            ON CONFLICT (minute, queue, series, shard) DO UPDATE SET n = m.n + excluded.n
        )
        SELECT 'f'::"char", f.ord::integer, NULL::@schema@.jobs FROM f;
        ELSE
        RETURN QUERY
        WITH f AS (
        UPDATE @schema@.jobs j SET
            state = o.state,
            max_attempts = coalesce(o.max_attempts, j.max_attempts),
            run_at = CASE WHEN o.state = 'failed' THEN coalesce(o.retry_at, p_now)
                          ELSE j.run_at END,
            worker = CASE WHEN o.state = 'failed' THEN NULL ELSE j.worker END,
            result_json = CASE WHEN o.state = 'failed' THEN j.result_json ELSE o.result END,
            error_type = CASE WHEN o.state = 'failed' OR o.etype IS NOT NULL
                              THEN o.etype ELSE j.error_type END,
            error_message = CASE WHEN o.state = 'failed' OR o.etype IS NOT NULL
                                 THEN o.emsg ELSE j.error_message END,
            error_traceback = CASE WHEN o.state = 'failed' OR o.etype IS NOT NULL
                                   THEN o.etb ELSE j.error_traceback END,
            finished_at = CASE WHEN o.state = 'failed' THEN j.finished_at ELSE p_now END,
            lease_expires_at = NULL
        FROM ROWS FROM (json_to_recordset(p_done) AS (
                 id text, attempt integer, state text, result text, etype text, emsg text,
                 etb text, retry_at double precision, max_attempts integer))
             WITH ORDINALITY AS o(id, attempt, state, result, etype, emsg, etb, retry_at,
                                  max_attempts, ord)
        WHERE j.id = o.id AND j.attempt = o.attempt AND j.state = 'running'
        -- the subquery reads the row as it was before this statement: the attempt's worker
        RETURNING o.ord, j.id, j.attempt, j.started_at, o.state, o.etype, o.emsg, o.etb,
                  CASE WHEN o.state <> 'succeeded'
                       THEN (SELECT b.worker FROM @schema@.jobs b WHERE b.id = j.id) END
                  AS worker, j.queue
        ), c AS (
            -- version 14: the attempt endings counted in this statement, a failure as
            -- 'retried' (faena.core.stats)
            INSERT INTO @schema@.job_minutes AS m (minute, queue, series, shard, n)
            SELECT floor(p_now / 60) * 60, f.queue,
                   CASE WHEN f.state = 'failed' THEN 'retried' ELSE f.state END,
                   pg_backend_pid(), count(*)
              FROM f GROUP BY 2, 3
            ON CONFLICT (minute, queue, series, shard) DO UPDATE SET n = m.n + excluded.n
        ), h AS (
            -- a success is not written here: the job row keeps that attempt (its worker,
            -- started_at and finished_at), and get() reads the record off the row; the
            -- common path thus writes nothing more than before the history existed
            SELECT @schema@.add_attempts(jsonb_agg(jsonb_build_object(
                'id', f.id, 'n', f.attempt, 'w', f.worker, 's', f.started_at, 'f', p_now,
                'o', f.state, 'et', f.etype, 'em', f.emsg, 'tb', f.etb))) AS added
            FROM f WHERE f.state <> 'succeeded'
        )
        SELECT 'f'::"char", f.ord::integer, NULL::@schema@.jobs FROM f, h;
        END IF;
    END IF;
    IF p_queues IS NULL THEN
        RETURN;
    END IF;
    IF p_limit <= 0 THEN
        IF EXISTS (SELECT 1 FROM @schema@.jobs
                    WHERE state = 'running' AND lease_expires_at <= p_now) THEN
            RETURN QUERY SELECT * FROM @schema@.reap(p_now);
        END IF;
        RETURN;
    END IF;

    -- One statement: whether leases ran out; the first runnable job, locked; then, once it is
    -- read (the lock is in the aggregate's result), the claim lock, if there is a job.
    IF cardinality(p_queues) = 1 THEN
        -- one queue: an ordered scan of jobs_pending, no sort
        SELECT min(s.id), min(s.pool), min(s.pool_slots),
               EXISTS (SELECT 1 FROM @schema@.jobs
                        WHERE state = 'running' AND lease_expires_at <= p_now),
               CASE WHEN count(*) > 0 THEN pg_advisory_xact_lock(@claim_lock@) IS NULL END
          INTO v_first, v_pool, v_slots, v_expired, v_locked
          FROM (SELECT id, pool, pool_slots FROM @schema@.jobs
                 WHERE queue = p_queues[1]
                   AND state IN ('scheduled', 'queued', 'failed') AND run_at <= p_now
                 ORDER BY priority DESC, seq
                 LIMIT 1
                   FOR UPDATE SKIP LOCKED) s;
    ELSE
        SELECT min(s.id), min(s.pool), min(s.pool_slots),
               EXISTS (SELECT 1 FROM @schema@.jobs
                        WHERE state = 'running' AND lease_expires_at <= p_now),
               CASE WHEN count(*) > 0 THEN pg_advisory_xact_lock(@claim_lock@) IS NULL END
          INTO v_first, v_pool, v_slots, v_expired, v_locked
          FROM (SELECT id, pool, pool_slots FROM @schema@.jobs
                 WHERE queue = ANY(p_queues)
                   AND state IN ('scheduled', 'queued', 'failed') AND run_at <= p_now
                 ORDER BY priority DESC, seq
                 LIMIT 1
                   FOR UPDATE SKIP LOCKED) s;
    END IF;

    IF v_expired THEN
        -- jobs whose lease ran out are runnable again and keep their place: they may come
        -- before the one just locked, so the search below looks again
        RETURN QUERY SELECT * FROM @schema@.reap(p_now);
        v_first := NULL;
        IF v_locked IS NULL THEN
            PERFORM pg_advisory_xact_lock(@claim_lock@);
        END IF;
    ELSIF v_first IS NULL THEN
        RETURN;
    END IF;

    IF v_first IS NOT NULL AND p_limit = 1 THEN
        -- admitted if its pool has a slot free and its slots fit, and the parallelism cap has
        -- room: read in this statement, after the lock
        RETURN QUERY
        UPDATE @schema@.jobs j SET
            state = 'running',
            attempt = j.attempt + 1,
            tries = j.tries + 1,
            worker = p_worker,
            started_at = p_now,
            lease_expires_at = p_now + p_lease
        WHERE j.id = v_first
          AND (SELECT p.size FROM @schema@.pools p WHERE p.name = v_pool)
              - (SELECT coalesce(sum(u.pool_slots), 0)::integer FROM @schema@.jobs u
                  WHERE u.state = 'running' AND u.pool = v_pool
                    AND u.lease_expires_at > p_now) >= greatest(v_slots, 1)
          AND coalesce((SELECT s.parallelism FROM @schema@.settings s)
                       > (SELECT count(*) FROM @schema@.jobs u
                           WHERE u.state = 'running' AND u.lease_expires_at > p_now), true)
        RETURNING 'c'::"char", 1, j;
        IF FOUND THEN
            RETURN;
        END IF;
    END IF;

    -- the version 2 search: free slots per pool and the running jobs of every pool (known
    -- or not), then admission over the first v_take candidates; if they ran out before the
    -- limit was reached while more may follow (pools filled up on the way), look further.
    -- Rows are locked as they are fetched, so only the candidates read are locked (the one
    -- locked above is this transaction's and is read again).
    SELECT array_agg(p.name), array_agg(p.size - u.used),
           array_agg(p.name) FILTER (WHERE p.size - u.used > 0),
           (SELECT count(*) FROM @schema@.jobs
             WHERE state = 'running' AND lease_expires_at > p_now),
           (SELECT parallelism FROM @schema@.settings)
      INTO v_names, v_free0, v_open, v_busy, v_cap
      FROM @schema@.pools p,
           LATERAL (SELECT coalesce(sum(j.pool_slots), 0)::integer AS used
                      FROM @schema@.jobs j
                     WHERE j.state = 'running' AND j.pool = p.name
                       AND j.lease_expires_at > p_now) u;
    IF v_open IS NULL OR v_cap - v_busy <= 0 THEN
        -- everything is full: saturated if a job is waiting (one a reap above just
        -- re-queued counts as well as the first candidate)
        IF p_tell_saturated AND (v_first IS NOT NULL OR (v_expired AND EXISTS (
                SELECT 1 FROM @schema@.jobs
                 WHERE queue = ANY(p_queues)
                   AND state IN ('scheduled', 'queued', 'failed') AND run_at <= p_now))) THEN
            RETURN QUERY SELECT 's'::"char", 0, NULL::@schema@.jobs;
        END IF;
        RETURN;
    END IF;

    v_take := p_limit * 4 + 16;
    LOOP
        v_free := v_free0;
        v_par := v_cap - v_busy;
        v_ids := '{}';
        v_seen := 0;
        IF cardinality(p_queues) = 1 THEN
            OPEN c FOR
                SELECT id, pool, pool_slots FROM @schema@.jobs
                 WHERE queue = p_queues[1]
                   AND state IN ('scheduled', 'queued', 'failed') AND run_at <= p_now
                   AND pool = ANY(v_open)
                 ORDER BY priority DESC, seq
                 LIMIT v_take
                   FOR UPDATE SKIP LOCKED;
        ELSE
            OPEN c FOR
                SELECT id, pool, pool_slots FROM @schema@.jobs
                 WHERE queue = ANY(p_queues)
                   AND state IN ('scheduled', 'queued', 'failed') AND run_at <= p_now
                   AND pool = ANY(v_open)
                 ORDER BY priority DESC, seq
                 LIMIT v_take
                   FOR UPDATE SKIP LOCKED;
        END IF;
        LOOP
            FETCH c INTO r;
            EXIT WHEN NOT FOUND;
            v_seen := v_seen + 1;
            v_i := array_position(v_names, r.pool);
            IF v_i IS NULL OR r.pool_slots > v_free[v_i] THEN
                v_blocked := true;
                CONTINUE;
            END IF;
            v_free[v_i] := v_free[v_i] - r.pool_slots;
            v_par := v_par - 1;
            v_ids := v_ids || r.id;
            EXIT WHEN cardinality(v_ids) >= p_limit OR v_par <= 0;
        END LOOP;
        CLOSE c;
        EXIT WHEN cardinality(v_ids) >= p_limit OR v_par <= 0 OR v_seen < v_take;
        v_take := v_take * 16;
    END LOOP;

    -- saturated: a runnable job was left because its pool or the cap was full (the first
    -- candidate, locked above, is admitted first unless its pool is full); with fewer jobs
    -- taken than asked, any runnable job left (a full pool the search does not read, or the
    -- cap) says so, and a cap used up by this claim with nothing left does not
    IF p_tell_saturated AND (v_blocked
            OR (v_first IS NOT NULL AND NOT v_first = ANY(v_ids))
            OR (cardinality(v_ids) < p_limit AND EXISTS (
                SELECT 1 FROM @schema@.jobs
                 WHERE queue = ANY(p_queues)
                   AND state IN ('scheduled', 'queued', 'failed') AND run_at <= p_now
                   AND NOT id = ANY(v_ids)))) THEN
        RETURN QUERY SELECT 's'::"char", 0, NULL::@schema@.jobs;
    END IF;
    IF cardinality(v_ids) = 0 THEN
        RETURN;
    END IF;
    RETURN QUERY
    UPDATE @schema@.jobs j SET
        state = 'running',
        attempt = j.attempt + 1,
        tries = j.tries + 1,
        worker = p_worker,
        started_at = p_now,
        lease_expires_at = p_now + p_lease
    WHERE j.id = ANY(v_ids)
    RETURNING 'c'::"char", array_position(v_ids, j.id), j;
END
$$;

-- reap: as in version 8, and the attempts it ends counted
CREATE OR REPLACE FUNCTION @schema@.reap(p_now double precision)
RETURNS SETOF @schema@.job_event
LANGUAGE plpgsql VOLATILE
SET plan_cache_mode = force_generic_plan SET enable_bitmapscan = off AS $$
BEGIN
    RETURN QUERY
    WITH expired AS (
        SELECT id FROM @schema@.jobs
        WHERE state = 'running' AND lease_expires_at <= p_now
        FOR UPDATE SKIP LOCKED
    ), gone AS (
        UPDATE @schema@.jobs j SET
            state = CASE WHEN j.cancel_requested THEN 'cancelled'
                         WHEN j.tries >= j.max_attempts THEN 'dead'
                         ELSE 'queued' END,
            finished_at = CASE WHEN j.cancel_requested OR j.tries >= j.max_attempts
                               THEN p_now ELSE j.finished_at END,
            worker = CASE WHEN j.cancel_requested OR j.tries >= j.max_attempts
                          THEN j.worker END,
            error_type = CASE WHEN NOT j.cancel_requested AND j.tries >= j.max_attempts
                              THEN 'WorkerLost' ELSE j.error_type END,
            error_message = CASE WHEN NOT j.cancel_requested AND j.tries >= j.max_attempts
                THEN format('worker %s stopped renewing its lease during attempt %s of %s '
                            '(killed, out of memory, or lost its broker)',
                            coalesce(j.worker, 'None'), j.attempt, j.max_attempts)
                ELSE j.error_message END,
            error_traceback = CASE WHEN NOT j.cancel_requested AND j.tries >= j.max_attempts
                                   THEN '' ELSE j.error_traceback END,
            lease_expires_at = NULL
        FROM expired WHERE j.id = expired.id
        RETURNING j AS job, (SELECT b.worker FROM @schema@.jobs b WHERE b.id = j.id) AS worker
    ), c AS (
        -- version 14: a lost attempt with attempts left is 'retried', else dead or cancelled
        INSERT INTO @schema@.job_minutes AS m (minute, queue, series, shard, n)
        SELECT floor(p_now / 60) * 60, (gone.job).queue,
               CASE WHEN (gone.job).state = 'queued' THEN 'retried' ELSE (gone.job).state END,
               pg_backend_pid(), count(*)
          FROM gone GROUP BY 2, 3
        ON CONFLICT (minute, queue, series, shard) DO UPDATE SET n = m.n + excluded.n
    ), h AS (
        SELECT @schema@.add_attempts(jsonb_agg(jsonb_build_object(
            'id', (gone.job).id, 'n', (gone.job).attempt, 'w', gone.worker,
            's', (gone.job).started_at, 'f', p_now, 'o', 'lost', 'et', 'WorkerLost',
            'em', format('worker %s stopped renewing its lease during attempt %s of %s '
                         '(killed, out of memory, or lost its broker)',
                         coalesce(gone.worker, 'None'), (gone.job).attempt,
                         (gone.job).max_attempts),
            'tb', ''))) AS added
        FROM gone
    )
    SELECT 'r'::"char", NULL::integer, gone.job FROM gone, h;
END
$$;
