-- faena PostgreSQL schema, version 13: an exchange says ``saturated`` only when a runnable
-- job was left behind (the protocol's definition, as the other backends say it).
--
-- Version 4's rule also said it when the parallelism cap was used up by the jobs this very
-- claim took, with nothing left waiting (a cap of 1 and one job: the worker then polled
-- for work that was not there), and missed a job left in a full pool that the candidate
-- search does not read (it reads the open pools only) when an earlier job of an open pool
-- was the first candidate, and a job a reap in the same call re-queued while every pool
-- or the cap was full. Now, when the claim took fewer jobs than asked, it is saturated
-- iff a runnable job of the queues is left unclaimed; when it took as many as asked, iff a
-- candidate was skipped for a full pool (a worker whose slots are all taken asks again as
-- one ends, so the hint is moot there). Found by tests/contract/test_state_machine.py.

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
                  AS worker
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
