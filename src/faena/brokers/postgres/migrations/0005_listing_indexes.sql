-- faena PostgreSQL schema, version 5: operators' listings and counts read indexes.
--
-- jobs of a state (and queue), newest first; counting by queue and state reads only this
-- index. A listing by state alone, or by queue alone, merges one range of it per queue (per
-- state): a Merge Append, never a sort of a whole state. A task filter reads jobs_task.
-- Building them locks the jobs table against writes while it runs (seconds per million jobs).
CREATE INDEX jobs_state_queue ON @schema@.jobs (state, queue, seq);
CREATE INDEX jobs_task ON @schema@.jobs (task, seq);
