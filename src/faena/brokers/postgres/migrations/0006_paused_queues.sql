-- faena PostgreSQL schema, version 6: paused queues.
--
-- A claim skips the queues of paused_queues: exchange() takes the queues it is given out of
-- the paused ones first, in the same call, then claims as before (the version 4 function,
-- renamed exchange_ignoring_pauses). Every caller of exchange() honours a pause, the
-- six-argument one of version 3 code included. Running jobs of a paused queue are not touched.

CREATE TABLE @schema@.paused_queues (
    queue     text PRIMARY KEY,
    paused_at double precision NOT NULL
);

-- p_queues without the paused ones, in their order; NULL stays NULL (a finish only)
CREATE FUNCTION @schema@.unpaused(p_queues text[])
RETURNS text[]
LANGUAGE sql STABLE STRICT AS $$
    SELECT coalesce(array_agg(q.name ORDER BY q.ord), '{}')
      FROM unnest(p_queues) WITH ORDINALITY AS q(name, ord)
     WHERE NOT EXISTS (SELECT 1 FROM @schema@.paused_queues p WHERE p.queue = q.name)
$$;

ALTER FUNCTION @schema@.exchange(
    json, text, text[], integer, double precision, double precision, boolean)
    RENAME TO exchange_ignoring_pauses;

CREATE FUNCTION @schema@.exchange(
    p_done json, p_worker text, p_queues text[], p_limit integer, p_lease double precision,
    p_now double precision, p_tell_saturated boolean)
RETURNS SETOF @schema@.job_event
-- PL/pgSQL, not SQL: a SQL function's body is planned again at every call (no plan cache
-- before PostgreSQL 18), which cost the drain about a quarter of its speed; PL/pgSQL keeps
-- the plan for the session
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    RETURN QUERY SELECT * FROM @schema@.exchange_ignoring_pauses(
        p_done, p_worker, @schema@.unpaused(p_queues), p_limit, p_lease, p_now,
        p_tell_saturated);
END
$$;
