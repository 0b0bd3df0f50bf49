-- The current faena PostgreSQL schema, as a freshly migrated store has it (generated from the
-- server's catalog by tests/integration/test_postgres_schema_file.py, which checks it; write
-- it anew with FAENA_WRITE_SCHEMA=1). The source of truth is migrations/: faena applies those,
-- never this file. @schema@ stands for the schema's name (?schema= in the broker URL).

CREATE TABLE @schema@.attempts (
    job_id text NOT NULL,
    history jsonb NOT NULL,
    CONSTRAINT attempts_job_id_fkey FOREIGN KEY (job_id) REFERENCES @schema@.jobs(id) ON DELETE CASCADE,
    CONSTRAINT attempts_pkey PRIMARY KEY (job_id)
);

CREATE TABLE @schema@.autoscalers (
    name text NOT NULL,
    updated_at double precision NOT NULL,
    report text NOT NULL,
    CONSTRAINT autoscalers_pkey PRIMARY KEY (name)
);

CREATE TABLE @schema@.edges (
    upstream text NOT NULL,
    downstream text NOT NULL,
    CONSTRAINT edges_pkey PRIMARY KEY (upstream, downstream)
);

CREATE TABLE @schema@.faena_schema_version (
    version integer NOT NULL,
    faena_version text NOT NULL,
    applied_at timestamp with time zone NOT NULL DEFAULT now(),
    CONSTRAINT faena_schema_version_pkey PRIMARY KEY (version)
);

CREATE TABLE @schema@.job_counts (
    queue text NOT NULL,
    state text NOT NULL,
    shard integer NOT NULL,
    n bigint NOT NULL,
    CONSTRAINT job_counts_pkey PRIMARY KEY (queue, state, shard)
);

CREATE TABLE @schema@.job_minutes (
    minute double precision NOT NULL,
    queue text NOT NULL,
    series text NOT NULL,
    shard integer NOT NULL,
    n bigint NOT NULL,
    CONSTRAINT job_minutes_pkey PRIMARY KEY (minute, queue, series, shard)
);

CREATE TABLE @schema@.jobs (
    id text NOT NULL,
    seq bigint NOT NULL DEFAULT nextval('@schema@.jobs_seq_seq'::regclass),
    task text NOT NULL,
    queue text NOT NULL,
    args_json text NOT NULL,
    kwargs_json text NOT NULL,
    state text NOT NULL,
    priority integer NOT NULL DEFAULT 0,
    pool text NOT NULL,
    pool_slots integer NOT NULL DEFAULT 1,
    attempt integer NOT NULL DEFAULT 0,
    tries integer NOT NULL DEFAULT 0,
    max_attempts integer NOT NULL,
    timeout double precision,
    idempotency_key text,
    enqueued_at double precision NOT NULL,
    run_at double precision NOT NULL,
    started_at double precision,
    finished_at double precision,
    lease_expires_at double precision,
    worker text,
    result_json text,
    error_type text,
    error_message text,
    error_traceback text,
    cancel_requested boolean NOT NULL DEFAULT false,
    run_id text,
    CONSTRAINT jobs_pkey PRIMARY KEY (id),
    CONSTRAINT jobs_pool_slots_check CHECK ((pool_slots >= 0)),
    CONSTRAINT jobs_state_check CHECK ((state = ANY (ARRAY['scheduled'::text, 'queued'::text, 'running'::text, 'succeeded'::text, 'failed'::text, 'dead'::text, 'cancelled'::text])))
);

CREATE TABLE @schema@.paused_queues (
    queue text NOT NULL,
    paused_at double precision NOT NULL,
    CONSTRAINT paused_queues_pkey PRIMARY KEY (queue)
);

CREATE TABLE @schema@.pools (
    name text NOT NULL,
    size integer NOT NULL,
    CONSTRAINT pools_pkey PRIMARY KEY (name),
    CONSTRAINT pools_size_check CHECK ((size >= 0))
);

CREATE TABLE @schema@.runs (
    seq bigint NOT NULL DEFAULT nextval('@schema@.runs_seq_seq'::regclass),
    id text NOT NULL,
    pipeline text NOT NULL,
    run_key text NOT NULL,
    params text NOT NULL,
    created_at double precision NOT NULL,
    ended_noted double precision,
    CONSTRAINT runs_pkey PRIMARY KEY (id),
    CONSTRAINT runs_run_key_key UNIQUE (run_key)
);

CREATE TABLE @schema@.schedules (
    name text NOT NULL,
    last_tick double precision NOT NULL,
    fired_at double precision NOT NULL,
    CONSTRAINT schedules_pkey PRIMARY KEY (name)
);

CREATE TABLE @schema@.settings (
    singleton boolean NOT NULL DEFAULT true,
    parallelism integer,
    CONSTRAINT settings_parallelism_check CHECK (((parallelism IS NULL) OR (parallelism >= 0))),
    CONSTRAINT settings_pkey PRIMARY KEY (singleton),
    CONSTRAINT settings_singleton_check CHECK (singleton)
);

CREATE TABLE @schema@.steps (
    job_id text NOT NULL,
    run_id text NOT NULL,
    ord integer NOT NULL,
    name text NOT NULL,
    rule text NOT NULL,
    results boolean NOT NULL,
    kwargs text NOT NULL,
    upstreams text NOT NULL,
    pending integer NOT NULL,
    failed integer NOT NULL,
    CONSTRAINT steps_pkey PRIMARY KEY (job_id)
);

CREATE TABLE @schema@.workers (
    id text NOT NULL,
    seen_at double precision NOT NULL,
    report text NOT NULL,
    CONSTRAINT workers_pkey PRIMARY KEY (id)
);

CREATE UNIQUE INDEX attempts_pkey ON @schema@.attempts USING btree (job_id);

CREATE UNIQUE INDEX autoscalers_pkey ON @schema@.autoscalers USING btree (name);

CREATE INDEX edges_down ON @schema@.edges USING btree (downstream, upstream);

CREATE UNIQUE INDEX edges_pkey ON @schema@.edges USING btree (upstream, downstream);

CREATE UNIQUE INDEX faena_schema_version_pkey ON @schema@.faena_schema_version USING btree (version);

CREATE UNIQUE INDEX job_counts_pkey ON @schema@.job_counts USING btree (queue, state, shard);

CREATE UNIQUE INDEX job_minutes_pkey ON @schema@.job_minutes USING btree (minute, queue, series, shard);

CREATE INDEX jobs_due ON @schema@.jobs USING btree (queue, run_at) WHERE (state = ANY (ARRAY['scheduled'::text, 'queued'::text, 'failed'::text]));

CREATE INDEX jobs_finished ON @schema@.jobs USING btree (finished_at) WHERE (state = ANY (ARRAY['succeeded'::text, 'dead'::text, 'cancelled'::text]));

CREATE UNIQUE INDEX jobs_idempotency ON @schema@.jobs USING btree (idempotency_key) WHERE ((idempotency_key IS NOT NULL) AND (state = ANY (ARRAY['scheduled'::text, 'queued'::text, 'running'::text, 'succeeded'::text, 'failed'::text])));

CREATE INDEX jobs_pending ON @schema@.jobs USING btree (queue, priority DESC, seq) WHERE (state = ANY (ARRAY['scheduled'::text, 'queued'::text, 'failed'::text]));

CREATE UNIQUE INDEX jobs_pkey ON @schema@.jobs USING btree (id);

CREATE INDEX jobs_running ON @schema@.jobs USING btree (pool) WHERE (state = 'running'::text);

CREATE INDEX jobs_seq ON @schema@.jobs USING btree (seq);

CREATE INDEX jobs_state_queue ON @schema@.jobs USING btree (state, queue, seq);

CREATE INDEX jobs_task ON @schema@.jobs USING btree (task, seq);

CREATE UNIQUE INDEX paused_queues_pkey ON @schema@.paused_queues USING btree (queue);

CREATE UNIQUE INDEX pools_pkey ON @schema@.pools USING btree (name);

CREATE INDEX runs_pipeline ON @schema@.runs USING btree (pipeline, seq);

CREATE UNIQUE INDEX runs_pkey ON @schema@.runs USING btree (id);

CREATE UNIQUE INDEX runs_run_key_key ON @schema@.runs USING btree (run_key);

CREATE INDEX runs_seq ON @schema@.runs USING btree (seq);

CREATE UNIQUE INDEX schedules_pkey ON @schema@.schedules USING btree (name);

CREATE UNIQUE INDEX settings_pkey ON @schema@.settings USING btree (singleton);

CREATE UNIQUE INDEX steps_pkey ON @schema@.steps USING btree (job_id);

CREATE INDEX steps_run ON @schema@.steps USING btree (run_id, ord);

CREATE UNIQUE INDEX workers_pkey ON @schema@.workers USING btree (id);

CREATE OR REPLACE FUNCTION @schema@.add_attempts(p_records jsonb)
 RETURNS integer
 LANGUAGE sql
AS $function$
    WITH r AS (
        SELECT e.value ->> 'id' AS job_id, jsonb_strip_nulls(e.value - 'id') AS rec, e.ord
          FROM jsonb_array_elements(coalesce(p_records, '[]'::jsonb)) WITH ORDINALITY
               AS e(value, ord)
    ), g AS (
        SELECT r.job_id, jsonb_agg(r.rec ORDER BY r.ord) AS recs FROM r GROUP BY r.job_id
    ), w AS (
        INSERT INTO @schema@.attempts AS a (job_id, history)
        SELECT g.job_id, g.recs FROM g
        ON CONFLICT (job_id) DO UPDATE SET history = (
            SELECT coalesce(jsonb_agg(x.value ORDER BY x.ord), '[]'::jsonb)
              FROM jsonb_array_elements(a.history || excluded.history) WITH ORDINALITY
                   AS x(value, ord)
             WHERE x.ord > jsonb_array_length(a.history || excluded.history) - 20)
        RETURNING 1
    )
    SELECT count(*)::integer FROM w;
$function$;

CREATE OR REPLACE FUNCTION @schema@.claim(p_worker text, p_queues text[], p_limit integer, p_lease double precision, p_now double precision)
 RETURNS SETOF @schema@.job_event
 LANGUAGE plpgsql
AS $function$
BEGIN
    RETURN QUERY SELECT * FROM @schema@.exchange(NULL, p_worker, p_queues, p_limit, p_lease,
                                                 p_now) AS e
                  ORDER BY e.kind = 'c', e.ord;
END
$function$;

CREATE OR REPLACE FUNCTION @schema@.count_deleted()
 RETURNS trigger
 LANGUAGE plpgsql
AS $function$
BEGIN
    INSERT INTO @schema@.job_counts AS c (queue, state, shard, n)
    SELECT o.queue, o.state, pg_backend_pid(), -count(*) FROM old_jobs o GROUP BY 1, 2
    ON CONFLICT (queue, state, shard) DO UPDATE SET n = c.n + excluded.n;
    RETURN NULL;
END
$function$;

CREATE OR REPLACE FUNCTION @schema@.count_end()
 RETURNS trigger
 LANGUAGE plpgsql
AS $function$
BEGIN
    INSERT INTO @schema@.job_minutes AS m (minute, queue, series, shard, n)
    VALUES (floor(NEW.finished_at / 60) * 60, NEW.queue, NEW.state, pg_backend_pid(), 1)
    ON CONFLICT (minute, queue, series, shard) DO UPDATE SET n = m.n + 1;
    RETURN NULL;
END
$function$;

CREATE OR REPLACE FUNCTION @schema@.count_inserted()
 RETURNS trigger
 LANGUAGE plpgsql
AS $function$
BEGIN
    INSERT INTO @schema@.job_counts AS c (queue, state, shard, n)
    SELECT w.queue, w.state, pg_backend_pid(), count(*) FROM new_jobs w GROUP BY 1, 2
    ON CONFLICT (queue, state, shard) DO UPDATE SET n = c.n + excluded.n;
    RETURN NULL;
END
$function$;

CREATE OR REPLACE FUNCTION @schema@.count_truncated()
 RETURNS trigger
 LANGUAGE plpgsql
AS $function$
BEGIN
    DELETE FROM @schema@.job_counts;
    RETURN NULL;
END
$function$;

CREATE OR REPLACE FUNCTION @schema@.count_updated()
 RETURNS trigger
 LANGUAGE plpgsql
AS $function$
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
$function$;

CREATE OR REPLACE FUNCTION @schema@.enqueue(p_jobs json, p_now double precision)
 RETURNS TABLE(ord integer, holder text)
 LANGUAGE plpgsql
 SET plan_cache_mode TO 'force_generic_plan'
AS $function$
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
$function$;

CREATE OR REPLACE FUNCTION @schema@.exchange(p_done json, p_worker text, p_queues text[], p_limit integer, p_lease double precision, p_now double precision)
 RETURNS SETOF @schema@.job_event
 LANGUAGE sql
AS $function$
    SELECT * FROM @schema@.exchange(p_done, p_worker, p_queues, p_limit, p_lease, p_now, false)
$function$;

CREATE OR REPLACE FUNCTION @schema@.exchange(p_done json, p_worker text, p_queues text[], p_limit integer, p_lease double precision, p_now double precision, p_tell_saturated boolean)
 RETURNS SETOF @schema@.job_event
 LANGUAGE plpgsql
AS $function$
DECLARE
    v_queues text[] := p_queues;
BEGIN
    IF p_queues IS NOT NULL
       AND EXISTS (SELECT 1 FROM @schema@.paused_queues WHERE queue = ANY(p_queues)) THEN
        SELECT coalesce(array_agg(q.name ORDER BY q.ord), '{}') INTO v_queues
          FROM unnest(p_queues) WITH ORDINALITY AS q(name, ord)
         WHERE NOT EXISTS (SELECT 1 FROM @schema@.paused_queues p WHERE p.queue = q.name);
    END IF;
    RETURN QUERY SELECT * FROM @schema@.exchange_ignoring_pauses(
        p_done, p_worker, v_queues, p_limit, p_lease, p_now, p_tell_saturated);
END
$function$;

CREATE OR REPLACE FUNCTION @schema@.exchange_ignoring_pauses(p_done json, p_worker text, p_queues text[], p_limit integer, p_lease double precision, p_now double precision, p_tell_saturated boolean)
 RETURNS SETOF @schema@.job_event
 LANGUAGE plpgsql
 SET plan_cache_mode TO 'force_generic_plan'
 SET enable_bitmapscan TO 'off'
 SET enable_hashjoin TO 'off'
 SET enable_mergejoin TO 'off'
AS $function$
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
$function$;

CREATE OR REPLACE FUNCTION @schema@.finish(p_id text[], p_attempt integer[], p_state text[], p_result text[], p_error_type text[], p_error_message text[], p_error_traceback text[], p_retry_at double precision[], p_max_attempts integer[], p_now double precision)
 RETURNS SETOF integer
 LANGUAGE plpgsql
AS $function$
BEGIN
    RETURN QUERY
    SELECT e.ord FROM @schema@.exchange(
        @schema@.outcomes_json(p_id, p_attempt, p_state, p_result, p_error_type,
                               p_error_message, p_error_traceback, p_retry_at,
                               p_max_attempts),
        NULL, NULL, 0, 0, p_now) AS e;
END
$function$;

CREATE OR REPLACE FUNCTION @schema@.finish_and_claim(p_id text[], p_attempt integer[], p_state text[], p_result text[], p_error_type text[], p_error_message text[], p_error_traceback text[], p_retry_at double precision[], p_max_attempts integer[], p_worker text, p_queues text[], p_limit integer, p_lease double precision, p_now double precision)
 RETURNS SETOF @schema@.job_event
 LANGUAGE plpgsql
AS $function$
BEGIN
    RETURN QUERY SELECT * FROM @schema@.exchange(
        CASE WHEN cardinality(p_id) > 0
             THEN @schema@.outcomes_json(p_id, p_attempt, p_state, p_result, p_error_type,
                                         p_error_message, p_error_traceback, p_retry_at,
                                         p_max_attempts) END,
        p_worker, p_queues, p_limit, p_lease, p_now) AS e
    ORDER BY e.kind = 'c', e.ord;
END
$function$;

CREATE OR REPLACE FUNCTION @schema@.fold_counts()
 RETURNS bigint
 LANGUAGE plpgsql
AS $function$
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
$function$;

CREATE OR REPLACE FUNCTION @schema@.hand_off()
 RETURNS trigger
 LANGUAGE plpgsql
AS $function$
DECLARE
    v_now   double precision := coalesce(NEW.finished_at, extract(epoch FROM clock_timestamp()));
    -- 1 if the step ends failed
    v_fail  integer := CASE WHEN NEW.state = 'succeeded' THEN 0 ELSE 1 END;
    s       record;
    v_woken boolean := false;
BEGIN
    IF OLD.state IN ('succeeded', 'dead', 'cancelled')
       AND NEW.state NOT IN ('succeeded', 'dead', 'cancelled') THEN
        -- an upstream that runs again (a retry, by hand or of the run) is pending again
        PERFORM 1 FROM @schema@.steps t
          WHERE t.job_id IN (SELECT e.downstream FROM @schema@.edges e
                              WHERE e.upstream = NEW.id)
          ORDER BY t.job_id FOR UPDATE;
        UPDATE @schema@.steps t SET pending = t.pending + 1,
               failed = t.failed - CASE WHEN OLD.state = 'succeeded' THEN 0 ELSE 1 END
         WHERE t.job_id IN (SELECT e.downstream FROM @schema@.edges e WHERE e.upstream = NEW.id);
        RETURN NULL;
    END IF;
    IF NEW.state NOT IN ('succeeded', 'dead', 'cancelled')
       OR OLD.state IN ('succeeded', 'dead', 'cancelled') THEN
        RETURN NULL;  -- a change between live states: nothing ended
    END IF;
    -- lock the downstreams' rows in one order, so two finishes never deadlock on them
    PERFORM 1 FROM @schema@.steps t
      WHERE t.job_id IN (SELECT e.downstream FROM @schema@.edges e WHERE e.upstream = NEW.id)
      ORDER BY t.job_id FOR UPDATE;
    FOR s IN
        UPDATE @schema@.steps t SET pending = t.pending - 1, failed = t.failed + v_fail
         WHERE t.job_id IN (SELECT e.downstream FROM @schema@.edges e WHERE e.upstream = NEW.id)
        RETURNING t.job_id, t.rule, t.results, t.kwargs, t.pending, t.failed
    LOOP
        IF (s.rule = 'all_success' AND s.pending = 0 AND s.failed = 0)
           OR (s.rule = 'all_done' AND s.pending = 0)
           OR (s.rule = 'one_failed' AND s.failed > 0) THEN
            UPDATE @schema@.jobs SET
                run_at = v_now,
                kwargs_json = CASE WHEN s.results THEN (s.kwargs::jsonb || jsonb_build_object(
                    'upstream', (SELECT jsonb_object_agg(us.name, u.result_json::jsonb)
                                   FROM @schema@.edges e
                                   JOIN @schema@.jobs u ON u.id = e.upstream
                                   JOIN @schema@.steps us ON us.job_id = e.upstream
                                  WHERE e.downstream = s.job_id)))::text
                              ELSE kwargs_json END
             WHERE id = s.job_id AND state = 'scheduled' AND run_at >= 253402300799;
            v_woken := v_woken OR FOUND;
        ELSIF (s.rule = 'all_success' AND s.failed > 0)
              OR (s.rule = 'one_failed' AND s.pending = 0 AND s.failed = 0) THEN
            -- ends the step: this trigger runs again for it
            UPDATE @schema@.jobs SET
                state = 'cancelled', finished_at = v_now, error_type = 'Skipped',
                error_message = 'skipped: its trigger rule ' || s.rule ||
                                ' can no longer be met by its upstreams',
                error_traceback = ''
             WHERE id = s.job_id AND state = 'scheduled' AND run_at >= 253402300799;
        END IF;
    END LOOP;
    IF v_woken THEN
        PERFORM pg_notify('@channel@', '');
    END IF;
    RETURN NULL;
END
$function$;

CREATE OR REPLACE FUNCTION @schema@.outcomes_json(p_id text[], p_attempt integer[], p_state text[], p_result text[], p_error_type text[], p_error_message text[], p_error_traceback text[], p_retry_at double precision[], p_max_attempts integer[])
 RETURNS json
 LANGUAGE plpgsql
 IMMUTABLE
AS $function$
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
$function$;

CREATE OR REPLACE FUNCTION @schema@.reap(p_now double precision)
 RETURNS SETOF @schema@.job_event
 LANGUAGE plpgsql
 SET plan_cache_mode TO 'force_generic_plan'
 SET enable_bitmapscan TO 'off'
AS $function$
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
$function$;

CREATE OR REPLACE FUNCTION @schema@.release(p_id text[], p_attempt integer[])
 RETURNS SETOF integer
 LANGUAGE plpgsql
 SET plan_cache_mode TO 'force_generic_plan'
AS $function$
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
$function$;

CREATE OR REPLACE FUNCTION @schema@.release(p_id text[], p_attempt integer[], p_now double precision)
 RETURNS SETOF integer
 LANGUAGE plpgsql
 SET plan_cache_mode TO 'force_generic_plan'
AS $function$
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
        RETURNING l.ord, j.id, j.attempt, j.started_at,
                  (SELECT b.worker FROM @schema@.jobs b WHERE b.id = j.id) AS worker
    ), h AS (
        SELECT @schema@.add_attempts(jsonb_agg(jsonb_build_object(
            'id', done.id, 'n', done.attempt, 'w', done.worker, 's', done.started_at,
            'f', p_now, 'o', 'released'))) AS added
        FROM done
    )
    SELECT done.ord::integer FROM done, h;
END
$function$;

CREATE OR REPLACE FUNCTION @schema@.unpaused(p_queues text[])
 RETURNS text[]
 LANGUAGE sql
 STABLE STRICT
AS $function$
    SELECT coalesce(array_agg(q.name ORDER BY q.ord), '{}')
      FROM unnest(p_queues) WITH ORDINALITY AS q(name, ord)
     WHERE NOT EXISTS (SELECT 1 FROM @schema@.paused_queues p WHERE p.queue = q.name)
$function$;

CREATE OR REPLACE FUNCTION @schema@.wake()
 RETURNS trigger
 LANGUAGE plpgsql
AS $function$
BEGIN
    PERFORM pg_notify('@channel@', '');
    RETURN NULL;
END
$function$;
