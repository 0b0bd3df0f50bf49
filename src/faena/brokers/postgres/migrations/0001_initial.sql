-- faena PostgreSQL schema, version 1.
--
-- @schema@ is replaced by the quoted schema name, @channel@ by the NOTIFY channel and
-- @claim_lock@ by the advisory lock key that serializes admission. Times are POSIX seconds
-- (double precision) taken from faena's clock, never from now(): tests move the clock.

CREATE TABLE @schema@.jobs (
    id               text             PRIMARY KEY,
    seq              bigserial        NOT NULL,
    task             text             NOT NULL,
    queue            text             NOT NULL,
    args_json        text             NOT NULL,
    kwargs_json      text             NOT NULL,
    state            text             NOT NULL CHECK (state IN
                       ('scheduled', 'queued', 'running', 'succeeded', 'failed', 'dead',
                        'cancelled')),
    priority         integer          NOT NULL DEFAULT 0,
    pool             text             NOT NULL,
    pool_slots       integer          NOT NULL DEFAULT 1 CHECK (pool_slots >= 0),
    attempt          integer          NOT NULL DEFAULT 0,
    tries            integer          NOT NULL DEFAULT 0,
    max_attempts     integer          NOT NULL,
    timeout          double precision,
    idempotency_key  text,
    enqueued_at      double precision NOT NULL,
    run_at           double precision NOT NULL,
    started_at       double precision,
    finished_at      double precision,
    lease_expires_at double precision,
    worker           text,
    result_json      text,
    error_type       text,
    error_message    text,
    error_traceback  text,
    cancel_requested boolean          NOT NULL DEFAULT false
) WITH (fillfactor = 80);  -- room on each page for HOT updates (heartbeats)

-- the claim path: runnable jobs of a queue by priority, then enqueue order
CREATE INDEX jobs_pending ON @schema@.jobs (queue, priority DESC, seq)
    WHERE state IN ('scheduled', 'queued', 'failed');
-- the running jobs (few: bounded by the workers' concurrency): reaping, and counting the
-- slots and the parallelism in use. The lease is not indexed, so a heartbeat is a HOT update.
CREATE INDEX jobs_running ON @schema@.jobs (pool)
    WHERE state = 'running';
-- one job per idempotency key while it is pending, running or succeeded
CREATE UNIQUE INDEX jobs_idempotency ON @schema@.jobs (idempotency_key)
    WHERE idempotency_key IS NOT NULL
      AND state IN ('scheduled', 'queued', 'running', 'succeeded', 'failed');
-- operators: newest first
CREATE INDEX jobs_seq ON @schema@.jobs (seq);
-- prune
CREATE INDEX jobs_finished ON @schema@.jobs (finished_at)
    WHERE state IN ('succeeded', 'dead', 'cancelled');

CREATE TABLE @schema@.pools (
    name text    PRIMARY KEY,
    size integer NOT NULL CHECK (size >= 0)
);
INSERT INTO @schema@.pools (name, size) VALUES ('default_pool', 128);

CREATE TABLE @schema@.settings (
    singleton   boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    parallelism integer CHECK (parallelism IS NULL OR parallelism >= 0)
);
INSERT INTO @schema@.settings (singleton, parallelism) VALUES (true, NULL);

-- what the functions below return: a tag, a position in the caller's list, and a job row
-- ('r' reaped, 'c' claimed, 'f' finished: only ord is set)
CREATE TYPE @schema@.job_event AS (kind "char", ord integer, job @schema@.jobs);

-- Leases that ran out: cancelled if a user asked, dead without attempts left, else queued
-- again keeping their place (lifecycle.expire).
CREATE FUNCTION @schema@.reap(p_now double precision)
RETURNS SETOF @schema@.job_event
LANGUAGE plpgsql VOLATILE SET plan_cache_mode = force_generic_plan AS $$
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

-- One atomic claim: reap, then admit runnable jobs of the queues by priority, then enqueue
-- order, each only if its pool has its slots free and the parallelism cap has room
-- (core.pools.Admission). Admission runs under one transaction-level advisory lock, so
-- claimers on any number of connections see each other's committed claims.
CREATE FUNCTION @schema@.claim(
    p_worker text, p_queues text[], p_limit integer, p_lease double precision,
    p_now double precision)
RETURNS SETOF @schema@.job_event
LANGUAGE plpgsql VOLATILE SET plan_cache_mode = force_generic_plan AS $$
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
    RETURN QUERY SELECT * FROM @schema@.reap(p_now);
    IF p_limit <= 0 THEN
        RETURN;
    END IF;

    PERFORM pg_advisory_xact_lock(@claim_lock@);

    SELECT array_agg(p.name), array_agg(p.size - coalesce(u.used, 0)),
           array_agg(p.name) FILTER (WHERE p.size - coalesce(u.used, 0) > 0),
           coalesce(sum(u.n), 0), (SELECT parallelism FROM @schema@.settings)
      INTO v_names, v_free0, v_open, v_busy, v_cap
      FROM @schema@.pools p
      FULL JOIN (SELECT pool, sum(pool_slots)::integer AS used, count(*)::integer AS n
                   FROM @schema@.jobs
                  WHERE state = 'running' AND lease_expires_at > p_now
                  GROUP BY pool) u ON u.pool = p.name;
    IF v_open IS NULL OR v_cap - v_busy <= 0 THEN
        RETURN;
    END IF;

    -- Admission over the first v_take candidates; if they ran out before the limit was
    -- reached while more may follow (pools filled up on the way), look further.
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
    WITH taken AS (
        UPDATE @schema@.jobs j SET
            state = 'running',
            attempt = j.attempt + 1,
            tries = j.tries + 1,
            worker = p_worker,
            started_at = p_now,
            lease_expires_at = p_now + p_lease
        WHERE j.id = ANY(v_ids)
        RETURNING j.id, j AS job
    )
    SELECT 'c'::"char", array_position(v_ids, taken.id), taken.job FROM taken
    ORDER BY 2;
END
$$;

-- The end of attempts, fenced on (id, attempt, running); returns the positions applied
-- (lifecycle.finish). The caller sends each (id, attempt) once. A failed attempt wakes the
-- listeners: its retry may be due at once.
CREATE FUNCTION @schema@.finish(
    p_id text[], p_attempt integer[], p_state text[], p_result text[], p_error_type text[],
    p_error_message text[], p_error_traceback text[], p_retry_at double precision[],
    p_max_attempts integer[], p_now double precision)
RETURNS SETOF integer
LANGUAGE plpgsql VOLATILE SET plan_cache_mode = force_generic_plan AS $$
BEGIN
    IF 'failed' = ANY(p_state) THEN
        PERFORM pg_notify('@channel@', '');
    END IF;
    RETURN QUERY
    WITH done AS (
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
        FROM unnest(p_id, p_attempt, p_state, p_result, p_error_type, p_error_message,
                    p_error_traceback, p_retry_at, p_max_attempts)
             WITH ORDINALITY AS o(id, attempt, state, result, etype, emsg, etb, retry_at,
                                  max_attempts, ord)
        WHERE j.id = o.id AND j.attempt = o.attempt AND j.state = 'running'
        RETURNING o.ord
    )
    SELECT done.ord::integer FROM done;
END
$$;

CREATE FUNCTION @schema@.finish_and_claim(
    p_id text[], p_attempt integer[], p_state text[], p_result text[], p_error_type text[],
    p_error_message text[], p_error_traceback text[], p_retry_at double precision[],
    p_max_attempts integer[], p_worker text, p_queues text[], p_limit integer,
    p_lease double precision, p_now double precision)
RETURNS SETOF @schema@.job_event
LANGUAGE plpgsql VOLATILE SET plan_cache_mode = force_generic_plan AS $$
BEGIN
    IF cardinality(p_id) > 0 THEN
        RETURN QUERY
        SELECT 'f'::"char", f.ord, NULL::@schema@.jobs
          FROM @schema@.finish(p_id, p_attempt, p_state, p_result, p_error_type,
                               p_error_message, p_error_traceback, p_retry_at,
                               p_max_attempts, p_now) AS f(ord);
    END IF;
    RETURN QUERY SELECT * FROM @schema@.claim(p_worker, p_queues, p_limit, p_lease, p_now);
END
$$;

-- Give attempts back (lifecycle.release): runnable at once, keeping run_at and seq.
-- The caller sends each (id, attempt) once.
CREATE FUNCTION @schema@.release(p_id text[], p_attempt integer[])
RETURNS SETOF integer
LANGUAGE plpgsql VOLATILE SET plan_cache_mode = force_generic_plan AS $$
BEGIN
    PERFORM pg_notify('@channel@', '');
    RETURN QUERY
    WITH done AS (
        UPDATE @schema@.jobs j SET
            state = 'queued',
            tries = greatest(j.tries - 1, 0),
            lease_expires_at = NULL,
            worker = NULL
        FROM unnest(p_id, p_attempt) WITH ORDINALITY AS l(id, attempt, ord)
        WHERE j.id = l.id AND j.attempt = l.attempt AND j.state = 'running'
        RETURNING l.ord
    )
    SELECT done.ord::integer FROM done;
END
$$;

-- Insert new jobs in one statement. p_jobs is a JSON array of objects with the keys id, task,
-- queue, args, kwargs, state, priority, pool, pool_slots, max_attempts, timeout, key and
-- run_at (one parameter instead of thirteen arrays: far cheaper for a client to send).
-- A row whose id or idempotency key is taken is skipped; for each skipped row the function
-- returns its position and the id of the job holding it (NULL if that job changed state
-- meanwhile: the caller tries again).
CREATE FUNCTION @schema@.enqueue(p_jobs json, p_now double precision)
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
        RETURNING id, queue
    ), woken AS (
        SELECT pg_notify('@channel@', q.queue) FROM (SELECT DISTINCT queue FROM ins) AS q
    )
    SELECT array_agg(ins.id) INTO v_inserted FROM ins, (SELECT count(*) FROM woken) AS w;
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
