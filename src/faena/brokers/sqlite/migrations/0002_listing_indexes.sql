-- faena SQLite schema, version 2: operators' listings and counts use indexes.
-- jobs of a state (and queue), newest first; counting by queue and state reads only this
-- index. A listing by state alone, or by queue alone, merges one range of it per queue (per
-- state), so no listing sorts or scans the table.
CREATE INDEX faena_jobs_state ON faena_jobs (state, queue, seq);
-- jobs of a task, newest first (a task never changes: only enqueue and prune write here)
CREATE INDEX faena_jobs_task ON faena_jobs (task, seq);
