-- faena SQLite schema, version 10: a job's key (Broker.job_keys, Zeebe's job key) is its
-- rowid, and is never given to another job. Without AUTOINCREMENT SQLite gives a new row the
-- highest rowid + 1, so pruning the newest jobs would hand their keys to the next ones: when
-- the newest row is deleted its key is kept here, and a row inserted at or below it moves
-- just above it. Enqueues pay the WHEN test only; deletes a seek on the primary key.
CREATE TABLE faena_key_floor (
    id  INTEGER PRIMARY KEY CHECK (id = 1),
    seq INTEGER NOT NULL
);

CREATE TRIGGER faena_key_floor_keep AFTER DELETE ON faena_jobs
WHEN NOT EXISTS (SELECT 1 FROM faena_jobs WHERE seq > OLD.seq)
BEGIN
    INSERT INTO faena_key_floor (id, seq) VALUES (1, OLD.seq)
    ON CONFLICT (id) DO UPDATE SET seq = max(seq, excluded.seq);
END;

CREATE TRIGGER faena_key_floor_skip AFTER INSERT ON faena_jobs
WHEN NEW.seq <= (SELECT seq FROM faena_key_floor WHERE id = 1)
BEGIN
    UPDATE faena_jobs SET seq = (SELECT seq FROM faena_key_floor WHERE id = 1) + 1
    WHERE seq = NEW.seq;
END;
