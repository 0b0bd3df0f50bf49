-- faena PostgreSQL schema, version 11: the autoscalers' state. One row per autoscaled
-- deployment (faena autoscale, faena up): its last report (JSON, faena.brokers.autoscalers)
-- and when the store got it, so every server replica shows the same desired vs actual.

CREATE TABLE @schema@.autoscalers (
    name       text PRIMARY KEY,
    updated_at double precision NOT NULL,
    report     text NOT NULL
);
