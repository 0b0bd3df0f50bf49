-- faena PostgreSQL schema, version 2: a worker's round trip in fewer, cheaper statements.
--
-- exchange() is now the one implementation of finishing attempts, reaping and claiming. The
-- version 1 functions keep their signatures and results and call it, so a version 1 worker
-- still running while its successors upgrade the schema keeps working.
--
-- Functions that read the running jobs plan without bitmap scans: a bitmap scan never marks
-- the index entries of dead row versions as dead, so with bitmap scans every read of
-- jobs_running walked one entry per job that had run since the last vacuum (thousands during a
-- drain). A plain index scan marks them as it passes and the walk stays as short as the set of
-- running jobs.

-- reap: as in version 1, planned without bitmap scans.
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
        RETURNING j AS job
    )
    SELECT 'r'::"char", NULL::integer, gone.job FROM gone;
END
$$;

-- One transaction of a worker: end attempts, then reap expired leases and claim.
--
-- p_done is a JSON array of outcomes, or NULL: objects with the keys id, attempt, state, and
-- where they apply result, etype, emsg, etb, retry_at, max_attempts (one parameter instead of
-- nine arrays: far cheaper for a client to send). Each is fenced on (id, attempt, running);
-- the caller sends each (id, attempt) once. A failed attempt wakes the listeners: its retry
-- may be due at once. Returns 'f' rows with the positions applied (lifecycle.finish).
--
-- With p_queues NULL that is all. Otherwise leases that ran out are reaped ('r' rows; only
-- when there are any), then, if p_limit > 0, runnable jobs of the queues are admitted by
-- priority, then enqueue order, each only if its pool has its slots free and the parallelism
-- cap has room (core.pools.Admission), and returned as 'c' rows with their place in that
-- order (ord; the rows come in any order). Admission runs under one transaction-level
-- advisory lock taken before the slots in use are counted, so claimers on any number of
-- connections see each other's committed claims.
--
-- Planned without bitmap scans (see above) and without hash and merge joins: the one join,
-- a few outcomes to their jobs, is a nested loop, which costs nothing to set up.
CREATE FUNCTION @schema@.exchange(
    p_done json, p_worker text, p_queues text[], p_limit integer, p_lease double precision,
    p_now double precision)
RETURNS SETOF @schema@.job_event
LANGUAGE plpgsql VOLATILE
SET plan_cache_mode = force_generic_plan SET enable_bitmapscan = off
SET enable_hashjoin = off SET enable_mergejoin = off AS $$
DECLARE
    v_names text[];
    v_free0 integer[];
    v_open  text[];
    v_cap   integer;
    v_busy  integer;
    v_free  integer[];
    v_par   integer;
    v_ids   text[];
    v_take  integer;
    v_seen  integer;
    v_i     integer;
    c       refcursor;
    r       record;
BEGIN
    IF p_done IS NOT NULL THEN
        IF p_done::jsonb @> '[{"state": "failed"}]' THEN
            PERFORM pg_notify('@channel@', '');
        END IF;
        RETURN QUERY
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
        RETURNING 'f'::"char", o.ord::integer, NULL::@schema@.jobs;
    END IF;
    IF p_queues IS NULL THEN
        RETURN;
    END IF;

    IF EXISTS (SELECT 1 FROM @schema@.jobs
                WHERE state = 'running' AND lease_expires_at <= p_now) THEN
        RETURN QUERY SELECT * FROM @schema@.reap(p_now);
    END IF;
    IF p_limit <= 0 THEN
        RETURN;
    END IF;

    -- a statement of its own, before the count: the count must see every claim committed
    -- by the previous holder of the lock
    PERFORM pg_advisory_xact_lock(@claim_lock@);

    -- free slots per pool, and the running jobs of every pool (known or not)
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
        RETURN;
    END IF;

    -- Admission over the first v_take candidates; if they ran out before the limit was
    -- reached while more may follow (pools filled up on the way), look further. Rows are
    -- locked as they are fetched, so only the candidates read are locked.
    v_take := p_limit * 4 + 16;
    LOOP
        v_free := v_free0;
        v_par := v_cap - v_busy;
        v_ids := '{}';
        v_seen := 0;
        IF cardinality(p_queues) = 1 THEN
            -- one queue: an ordered scan of jobs_pending, no sort
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
            CONTINUE WHEN v_i IS NULL OR r.pool_slots > v_free[v_i];
            v_free[v_i] := v_free[v_i] - r.pool_slots;
            v_par := v_par - 1;
            v_ids := v_ids || r.id;
            EXIT WHEN cardinality(v_ids) >= p_limit OR v_par <= 0;
        END LOOP;
        CLOSE c;
        EXIT WHEN cardinality(v_ids) >= p_limit OR v_par <= 0 OR v_seen < v_take;
        v_take := v_take * 16;
    END LOOP;

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

-- The version 1 entry points, now over exchange(); claimed jobs in admission order, last,
-- as version 1 returned them.

-- version 1's array arguments of finish as exchange's JSON outcomes
CREATE FUNCTION @schema@.outcomes_json(
    p_id text[], p_attempt integer[], p_state text[], p_result text[], p_error_type text[],
    p_error_message text[], p_error_traceback text[], p_retry_at double precision[],
    p_max_attempts integer[])
RETURNS json
LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    RETURN (
        SELECT coalesce(json_agg(json_build_object(
                   'id', o.id, 'attempt', o.attempt, 'state', o.state, 'result', o.result,
                   'etype', o.etype, 'emsg', o.emsg, 'etb', o.etb, 'retry_at', o.retry_at,
                   'max_attempts', o.max_attempts) ORDER BY o.n), '[]')
          FROM unnest(p_id, p_attempt, p_state, p_result, p_error_type, p_error_message,
                      p_error_traceback, p_retry_at, p_max_attempts)
               WITH ORDINALITY AS o(id, attempt, state, result, etype, emsg, etb, retry_at,
                                    max_attempts, n)
    );
END
$$;

CREATE OR REPLACE FUNCTION @schema@.claim(
    p_worker text, p_queues text[], p_limit integer, p_lease double precision,
    p_now double precision)
RETURNS SETOF @schema@.job_event
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    RETURN QUERY SELECT * FROM @schema@.exchange(NULL, p_worker, p_queues, p_limit, p_lease,
                                                 p_now) AS e
                  ORDER BY e.kind = 'c', e.ord;
END
$$;

CREATE OR REPLACE FUNCTION @schema@.finish(
    p_id text[], p_attempt integer[], p_state text[], p_result text[], p_error_type text[],
    p_error_message text[], p_error_traceback text[], p_retry_at double precision[],
    p_max_attempts integer[], p_now double precision)
RETURNS SETOF integer
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    RETURN QUERY
    SELECT e.ord FROM @schema@.exchange(
        @schema@.outcomes_json(p_id, p_attempt, p_state, p_result, p_error_type,
                               p_error_message, p_error_traceback, p_retry_at,
                               p_max_attempts),
        NULL, NULL, 0, 0, p_now) AS e;
END
$$;

CREATE OR REPLACE FUNCTION @schema@.finish_and_claim(
    p_id text[], p_attempt integer[], p_state text[], p_result text[], p_error_type text[],
    p_error_message text[], p_error_traceback text[], p_retry_at double precision[],
    p_max_attempts integer[], p_worker text, p_queues text[], p_limit integer,
    p_lease double precision, p_now double precision)
RETURNS SETOF @schema@.job_event
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    RETURN QUERY SELECT * FROM @schema@.exchange(
        CASE WHEN cardinality(p_id) > 0
             THEN @schema@.outcomes_json(p_id, p_attempt, p_state, p_result, p_error_type,
                                         p_error_message, p_error_traceback, p_retry_at,
                                         p_max_attempts) END,
        p_worker, p_queues, p_limit, p_lease, p_now) AS e
    ORDER BY e.kind = 'c', e.ord;
END
$$;

-- New jobs wake the workers: every statement that inserts into jobs (enqueue(), the COPY of a
-- group) notifies the schema's channel once, in the inserting transaction, so a group written
-- with COPY costs one statement and one round trip. Listeners only need to know that
-- something changed: the payload is empty.
CREATE FUNCTION @schema@.wake() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('@channel@', '');
    RETURN NULL;
END
$$;

CREATE TRIGGER jobs_wake AFTER INSERT ON @schema@.jobs
    FOR EACH STATEMENT EXECUTE FUNCTION @schema@.wake();

-- enqueue: as in version 1, less the NOTIFY (the trigger sends it).
CREATE OR REPLACE FUNCTION @schema@.enqueue(p_jobs json, p_now double precision)
RETURNS TABLE (ord integer, holder text)
LANGUAGE plpgsql VOLATILE SET plan_cache_mode = force_generic_plan AS $$
#variable_conflict use_column
DECLARE
    v_inserted text[];
BEGIN
    WITH ins AS (
        INSERT INTO @schema@.jobs (id, task, queue, args_json, kwargs_json, state, priority,
                                   pool, pool_slots, max_attempts, timeout, idempotency_key,
                                   enqueued_at, run_at)
        SELECT s.id, s.task, s.queue, s.args, s.kwargs, s.state, s.priority, s.pool,
               s.pool_slots, s.max_attempts, s.timeout, s.key, p_now, s.run_at
          FROM ROWS FROM (json_to_recordset(p_jobs) AS (
                   id text, task text, queue text, args text, kwargs text, state text,
                   priority integer, pool text, pool_slots integer, max_attempts integer,
                   timeout double precision, key text, run_at double precision))
               WITH ORDINALITY AS s(id, task, queue, args, kwargs, state, priority, pool,
                                    pool_slots, max_attempts, timeout, key, run_at, n)
         ORDER BY s.n
        ON CONFLICT DO NOTHING
        RETURNING id
    )
    SELECT array_agg(ins.id) INTO v_inserted FROM ins;
    IF coalesce(cardinality(v_inserted), 0) = json_array_length(p_jobs) THEN
        RETURN;
    END IF;
    RETURN QUERY
    SELECT s.n::integer,
           coalesce((SELECT j.id FROM @schema@.jobs j WHERE j.id = s.id),
                    (SELECT j.id FROM @schema@.jobs j
                      WHERE j.idempotency_key = s.key
                        AND j.state IN ('scheduled', 'queued', 'running', 'succeeded',
                                        'failed')))
      FROM ROWS FROM (json_to_recordset(p_jobs) AS (id text, key text))
           WITH ORDINALITY AS s(id, key, n)
     WHERE v_inserted IS NULL OR NOT (s.id = ANY(v_inserted));
END
$$;
