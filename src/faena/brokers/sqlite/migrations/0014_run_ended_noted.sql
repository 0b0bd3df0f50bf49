-- faena SQLite schema, version 14: the end of a pipeline run reported once.
--
-- ended_noted is the finished_at of the run's end that a process has reported (its
-- pipeline.run_finished log line): note_run_ended sets it only where it differs, so of
-- several processes that see the end at once exactly one reports it, and a run retried
-- and ended again is reported again. NULL: no end reported yet.
ALTER TABLE faena_runs ADD COLUMN ended_noted REAL;
