-- faena SQLite schema, version 13: faena_count_ends (version 11) counts the same endings the
-- same way, with its state tests written as = ... OR = ... instead of IN (...) lists.
--
-- SQLite evaluates "x IN (three or more constants)" by filling an ephemeral table with the
-- list once per run of the program it is in, and a trigger's program runs once per row: the
-- version 11 trigger built two such tables in its WHEN and two more in its body for every
-- job a finish ended, and one for every job a claim started. That was 20-40 us of CPU per
-- job, more than the finish's own UPDATE (measured in docs/benchmarks.md, "SQLite: enqueue
-- and drain per job"). Comparisons cost nothing to set up. No trigger of faena's may use an
-- IN list of three or more constants (tests/integration/test_sqlite_triggers.py checks).
DROP TRIGGER faena_count_ends;

CREATE TRIGGER faena_count_ends AFTER UPDATE OF state ON faena_jobs
WHEN ((NEW.state = 'succeeded' OR NEW.state = 'dead' OR NEW.state = 'cancelled')
      AND NOT (OLD.state = 'succeeded' OR OLD.state = 'dead' OR OLD.state = 'cancelled'))
  OR (OLD.state = 'running'
      AND (NEW.state = 'failed' OR (NEW.state = 'queued' AND NEW.tries >= OLD.tries)))
BEGIN
    INSERT INTO faena_job_minutes (minute, queue, series, n)
    VALUES (
        CAST(coalesce(CASE WHEN NEW.state = 'failed' OR NEW.state = 'queued' THEN NULL
                           ELSE NEW.finished_at END,
                      json_extract(NEW.attempts, '$[#-1].f')) / 60 AS INTEGER) * 60,
        NEW.queue,
        CASE WHEN NEW.state = 'failed' OR NEW.state = 'queued' THEN 'retried'
             ELSE NEW.state END,
        1)
    ON CONFLICT (minute, queue, series) DO UPDATE SET n = n + 1;
END;
