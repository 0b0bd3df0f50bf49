-- faena SQLite schema, version 8: pipeline runs (faena.core.runs, rules in
-- faena.core.dependencies). A step is an ordinary job with run_id set; one waiting for its
-- upstreams is 'scheduled' with run_at 253402300799 (core.dependencies.BLOCKED_AT), so no
-- claim takes it. The trigger below hands off in the statement that ends a step: ordinary
-- jobs (run_id NULL) only pay its WHEN test.
ALTER TABLE faena_jobs ADD COLUMN run_id TEXT;

CREATE TABLE faena_runs (
    seq        INTEGER PRIMARY KEY,
    id         TEXT NOT NULL UNIQUE,
    pipeline   TEXT NOT NULL,
    run_key    TEXT NOT NULL UNIQUE,  -- held as long as the run is kept
    params     TEXT NOT NULL,
    created_at REAL NOT NULL
);
CREATE INDEX faena_runs_pipeline ON faena_runs (pipeline, seq);

CREATE TABLE faena_steps (
    job_id    TEXT PRIMARY KEY,
    run_id    TEXT NOT NULL,
    ord       INTEGER NOT NULL,  -- topological order within the run
    name      TEXT NOT NULL,
    rule      TEXT NOT NULL,     -- core.dependencies.TriggerRule
    results   INTEGER NOT NULL,  -- 1: the job gets its upstreams' results as 'upstream'
    kwargs    TEXT NOT NULL,     -- the keyword arguments as declared
    upstreams TEXT NOT NULL,     -- JSON array of step names
    pending   INTEGER NOT NULL,  -- upstreams not ended yet
    failed    INTEGER NOT NULL   -- upstreams ended dead or cancelled
) WITHOUT ROWID;
CREATE INDEX faena_steps_run ON faena_steps (run_id, ord);

CREATE TABLE faena_edges (
    upstream   TEXT NOT NULL,
    downstream TEXT NOT NULL,
    PRIMARY KEY (upstream, downstream)
) WITHOUT ROWID;
CREATE INDEX faena_edges_down ON faena_edges (downstream, upstream);

-- Each step keeps how many of its upstreams have not ended (pending) and how many ended
-- dead or cancelled (failed), kept true by the two triggers below at every change of an
-- upstream's state into or out of the terminal states (a finish, a reap, a cancel, a
-- retry), so deciding a downstream reads one row, not all its upstreams.
-- core.dependencies.decide on those counts: release (run_at = now, results added) or skip
-- (cancelled, 'Skipped') each waiting downstream of the step that just ended; a skip ends
-- a step, so this trigger runs again for it (the store sets recursive_triggers).
CREATE TRIGGER faena_hand_off AFTER UPDATE OF state ON faena_jobs
WHEN NEW.run_id IS NOT NULL AND NEW.state IN ('succeeded', 'dead', 'cancelled')
     AND OLD.state NOT IN ('succeeded', 'dead', 'cancelled')
BEGIN
    UPDATE faena_steps SET pending = pending - 1, failed = failed + (NEW.state <> 'succeeded')
    WHERE job_id IN (SELECT downstream FROM faena_edges WHERE upstream = NEW.id);
    UPDATE faena_jobs SET
        run_at = COALESCE(NEW.finished_at, (julianday('now') - 2440587.5) * 86400.0),
        kwargs = COALESCE((
            SELECT json_set(s.kwargs, '$.upstream', json((
                SELECT json_group_object(us.name, json(u.result))
                  FROM faena_edges e JOIN faena_jobs u ON u.id = e.upstream
                  JOIN faena_steps us ON us.job_id = e.upstream
                 WHERE e.downstream = faena_jobs.id)))
              FROM faena_steps s WHERE s.job_id = faena_jobs.id AND s.results = 1), kwargs)
    WHERE id IN (SELECT downstream FROM faena_edges WHERE upstream = NEW.id)
      AND state = 'scheduled' AND run_at >= 253402300799
      AND (SELECT CASE s.rule
                  WHEN 'all_success' THEN s.pending = 0 AND s.failed = 0
                  WHEN 'all_done' THEN s.pending = 0
                  WHEN 'one_failed' THEN s.failed > 0
                  ELSE 0 END
             FROM faena_steps s WHERE s.job_id = faena_jobs.id);
    UPDATE faena_jobs SET
        state = 'cancelled',
        finished_at = COALESCE(NEW.finished_at, (julianday('now') - 2440587.5) * 86400.0),
        error_type = 'Skipped',
        error_message = 'skipped: its trigger rule ' ||
            (SELECT rule FROM faena_steps s WHERE s.job_id = faena_jobs.id) ||
            ' can no longer be met by its upstreams',
        error_traceback = ''
    WHERE id IN (SELECT downstream FROM faena_edges WHERE upstream = NEW.id)
      AND state = 'scheduled' AND run_at >= 253402300799
      AND (SELECT CASE s.rule
                  WHEN 'all_success' THEN s.failed > 0
                  WHEN 'one_failed' THEN s.pending = 0 AND s.failed = 0
                  ELSE 0 END
             FROM faena_steps s WHERE s.job_id = faena_jobs.id);
END;

-- An upstream that runs again (a retry, by hand or of the run) is pending again.
CREATE TRIGGER faena_hand_back AFTER UPDATE OF state ON faena_jobs
WHEN NEW.run_id IS NOT NULL AND OLD.state IN ('succeeded', 'dead', 'cancelled')
     AND NEW.state NOT IN ('succeeded', 'dead', 'cancelled')
BEGIN
    UPDATE faena_steps SET pending = pending + 1, failed = failed - (OLD.state <> 'succeeded')
    WHERE job_id IN (SELECT downstream FROM faena_edges WHERE upstream = NEW.id);
END;
