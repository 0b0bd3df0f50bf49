-- faena PostgreSQL schema, version 9: the pause check of exchange() costs nothing when none
-- of the worker's queues is paused.
--
-- Version 6's exchange() called unpaused(p_queues) at every call: a SQL function, whose body
-- PostgreSQL plans again at every call (before version 18), about 100 us a call, which the
-- drain paid at every finish and claim (a quarter of its speed on two cores). Here the check
-- is a query of this PL/pgSQL body (its plan kept for the session) on paused_queues' primary
-- key, and the queues are filtered only when one of them is paused. What a claim skips is
-- unchanged: every paused queue among p_queues, in the same call.

CREATE OR REPLACE FUNCTION @schema@.exchange(
    p_done json, p_worker text, p_queues text[], p_limit integer, p_lease double precision,
    p_now double precision, p_tell_saturated boolean)
RETURNS SETOF @schema@.job_event
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    v_queues text[] := p_queues;
BEGIN
    IF p_queues IS NOT NULL
       AND EXISTS (SELECT 1 FROM @schema@.paused_queues WHERE queue = ANY(p_queues)) THEN
        SELECT coalesce(array_agg(q.name ORDER BY q.ord), '{}') INTO v_queues
          FROM unnest(p_queues) WITH ORDINALITY AS q(name, ord)
         WHERE NOT EXISTS (SELECT 1 FROM @schema@.paused_queues p WHERE p.queue = q.name);
    END IF;
    RETURN QUERY SELECT * FROM @schema@.exchange_ignoring_pauses(
        p_done, p_worker, v_queues, p_limit, p_lease, p_now, p_tell_saturated);
END
$$;
