-- faena PostgreSQL schema, version 16: the end of a pipeline run reported once.
--
-- ended_noted is the finished_at of the run's end that a process has reported (its
-- pipeline.run_finished log line): note_run_ended sets it in one UPDATE only where it
-- differs, so of several processes that see the end at once exactly one gets the row (the
-- others wait for its commit, then find it equal and change nothing), and a run retried and
-- ended again is reported again. NULL: no end reported yet.
ALTER TABLE @schema@.runs ADD COLUMN ended_noted double precision;
