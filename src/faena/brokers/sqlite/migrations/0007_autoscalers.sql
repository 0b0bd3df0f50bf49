-- faena SQLite schema, version 7: the autoscalers' state. One row per autoscaled deployment
-- (faena autoscale, faena up): its last report (JSON, faena.brokers.autoscalers) and when
-- the store got it.
CREATE TABLE faena_autoscalers (
    name       TEXT PRIMARY KEY,
    updated_at REAL NOT NULL,
    report     TEXT NOT NULL
) WITHOUT ROWID;
