-- faena PostgreSQL schema, version 12: pipeline runs (faena.core.runs, rules in
-- faena.core.dependencies).
--
-- A step is an ordinary job with run_id set; one waiting for its upstreams is 'scheduled'
-- with run_at 253402300799 (core.dependencies.BLOCKED_AT), so no claim takes it. The row
-- trigger jobs_hand_off runs inside the statement that ends a step (the finish of exchange,
-- a reap, a cancel): it releases (run_at = now, results added) or skips (cancelled,
-- 'Skipped') each waiting downstream. Ordinary jobs (run_id NULL) pay only its WHEN test: no
-- lookup. Each step keeps how many of its upstreams have not ended (pending) and how many
-- ended dead or cancelled (failed), kept true by jobs_hand_off (both ways) at every
-- change of an upstream's state into or out of the terminal states; the counts are changed
-- by one UPDATE of the downstreams' steps rows, which locks them (in job id order): of two
-- transactions ending the last two upstreams at once, the second waits for the first's
-- commit and reads its count, so the downstream is released exactly once, and deciding
-- reads one row, not all the upstreams.

ALTER TABLE @schema@.jobs ADD COLUMN run_id text;

CREATE TABLE @schema@.runs (
    seq        bigserial,
    id         text PRIMARY KEY,
    pipeline   text NOT NULL,
    run_key    text NOT NULL UNIQUE,  -- held as long as the run is kept
    params     text NOT NULL,
    created_at double precision NOT NULL
);
CREATE INDEX runs_pipeline ON @schema@.runs (pipeline, seq);
CREATE INDEX runs_seq ON @schema@.runs (seq);

CREATE TABLE @schema@.steps (
    job_id    text PRIMARY KEY,
    run_id    text NOT NULL,
    ord       integer NOT NULL,   -- topological order within the run
    name      text NOT NULL,
    rule      text NOT NULL,      -- core.dependencies.TriggerRule
    results   boolean NOT NULL,   -- the job gets its upstreams' results as 'upstream'
    kwargs    text NOT NULL,      -- the keyword arguments as declared
    upstreams text NOT NULL,      -- JSON array of step names
    pending   integer NOT NULL,   -- upstreams not ended yet
    failed    integer NOT NULL    -- upstreams ended dead or cancelled
);
CREATE INDEX steps_run ON @schema@.steps (run_id, ord);

CREATE TABLE @schema@.edges (
    upstream   text NOT NULL,
    downstream text NOT NULL,
    PRIMARY KEY (upstream, downstream)
);
CREATE INDEX edges_down ON @schema@.edges (downstream, upstream);

CREATE FUNCTION @schema@.hand_off() RETURNS trigger
LANGUAGE plpgsql AS $$
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
$$;

-- One row trigger for both directions; its WHEN is the only cost of an ordinary job (no
-- run_id: the function is not called).
CREATE TRIGGER jobs_hand_off AFTER UPDATE OF state ON @schema@.jobs
    FOR EACH ROW WHEN (NEW.run_id IS NOT NULL)
    EXECUTE FUNCTION @schema@.hand_off();
