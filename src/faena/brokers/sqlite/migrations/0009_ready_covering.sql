-- faena SQLite schema, version 9: the claim index carries run_at and state, so the queue
-- stats of the console's overview and queues page read it alone (a covering index) instead of
-- one table row per waiting job: on 300,000 waiting jobs 200 ms became 53 ms. Its order is
-- unchanged (the claim's), and a job's claim and finish still write it once: run_at and state
-- only change while a job waits when it is released or its retry is due.
DROP INDEX faena_jobs_ready;
CREATE INDEX faena_jobs_ready ON faena_jobs (queue, priority DESC, seq, run_at, state)
    WHERE state IN ('scheduled', 'queued', 'failed');
