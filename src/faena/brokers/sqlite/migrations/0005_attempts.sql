-- faena SQLite schema, version 5: the attempt history. A JSON array of the job's ended
-- attempts (faena.core.attempts, short keys), the last MAX_ATTEMPTS_KEPT; NULL: none yet.
ALTER TABLE faena_jobs ADD COLUMN attempts TEXT;
