-- Statements the PostgreSQL broker sends, one per "-- name:" section. @schema@ is the
-- quoted schema; a set of faena.core.states by its name (@pending@, @terminal@, ...) is its
-- list of states (faena.brokers.literals: never write a list of states here by hand); parameters use psycopg's %(name)s style, except in the statements that
-- queries.PREPARED names: those are prepared on each connection and take $n parameters,
-- sent as text. Job rows are selected as j.*, in the table's column order
-- (rows.JOB_COLUMNS).

-- name: exchange
-- $1 done, $2 worker, $3 queues, $4 limit, $5 lease, $6 now; rows of kind 's' say saturated
SELECT e.kind, e.ord, (e.job).*
  FROM @schema@.exchange($1::json, $2::text, $3::text[], $4::integer,
                         $5::double precision, $6::double precision, true) AS e;

-- name: reap
SELECT e.kind, e.ord, (e.job).* FROM @schema@.reap(%(now)s::double precision) AS e;

-- name: release
SELECT r.ord FROM @schema@.release(%(ids)s::text[], %(attempts)s::integer[],
                                   %(now)s::double precision) AS r(ord);

-- name: heartbeat
UPDATE @schema@.jobs j SET lease_expires_at = %(deadline)s::double precision
  FROM unnest(%(ids)s::text[], %(attempts)s::integer[]) AS l(id, attempt)
 WHERE j.id = l.id AND j.attempt = l.attempt AND j.state = 'running'
RETURNING j.id, j.attempt, j.cancel_requested;

-- name: enqueue
-- $1 jobs, $2 now
SELECT e.ord, e.holder FROM @schema@.enqueue($1::json, $2::double precision) AS e;

-- name: insert_job
-- one new job, as enqueue() inserts it; no row back when its id or idempotency key is taken
-- $1 id, $2 task, $3 queue, $4 args, $5 kwargs, $6 state, $7 priority, $8 pool, $9 pool_slots,
-- $10 max_attempts, $11 timeout, $12 key, $13 enqueued_at, $14 run_at
INSERT INTO @schema@.jobs (id, task, queue, args_json, kwargs_json, state, priority, pool,
                           pool_slots, max_attempts, timeout, idempotency_key, enqueued_at,
                           run_at)
VALUES ($1::text, $2::text, $3::text, $4::text, $5::text, $6::text, $7::integer, $8::text,
        $9::integer, $10::integer, $11::double precision, $12::text, $13::double precision,
        $14::double precision)
ON CONFLICT DO NOTHING
RETURNING id;

-- name: copy_jobs
COPY @schema@.jobs (id, task, queue, args_json, kwargs_json, state, priority, pool, pool_slots,
                    max_attempts, timeout, enqueued_at, run_at) FROM STDIN (FORMAT BINARY);

-- name: jobs_by_ids
SELECT j.* FROM @schema@.jobs j WHERE j.id = ANY(%(ids)s::text[]);

-- name: get
-- the job, then its attempt history (null: none yet)
SELECT j.*, (SELECT a.history::text FROM @schema@.attempts a WHERE a.job_id = j.id)
  FROM @schema@.jobs j WHERE j.id = %(id)s;

-- name: get_for_update
SELECT j.* FROM @schema@.jobs j WHERE j.id = %(id)s FOR UPDATE;

-- name: key_holder
SELECT j.id FROM @schema@.jobs j
 WHERE j.idempotency_key = %(key)s AND j.id <> %(id)s
   AND j.state IN @holds_key@;

-- name: manual_retry
UPDATE @schema@.jobs j SET
    state = 'queued', tries = 0, run_at = %(now)s::double precision, finished_at = NULL,
    result_json = NULL, cancel_requested = false, lease_expires_at = NULL, worker = NULL
 WHERE j.id = %(id)s
RETURNING j.*;

-- name: cancel_pending
-- what faena.core.lifecycle.cancel made of a pending job: its state, finished now
UPDATE @schema@.jobs j SET state = %(state)s, finished_at = %(now)s::double precision
 WHERE j.id = %(id)s
RETURNING j.*;

-- name: cancel_running
UPDATE @schema@.jobs j SET cancel_requested = true WHERE j.id = %(id)s RETURNING j.*;

-- name: bulk_retry_batch
-- the next batch of a bulk retry (faena.brokers.bulk), newest first: jobs in %(states)s
-- matching the filters whose idempotency key no live job holds; rows another transaction
-- holds are skipped (left for the next call), as the claim skips them
SELECT j.* FROM @schema@.jobs j
 WHERE j.state = ANY(%(states)s::text[])
   AND (%(queue)s::text IS NULL OR j.queue = %(queue)s::text)
   AND (%(task)s::text IS NULL OR j.task = %(task)s::text)
   AND (j.idempotency_key IS NULL OR NOT EXISTS (
        SELECT 1 FROM @schema@.jobs o
         WHERE o.idempotency_key = j.idempotency_key AND o.id <> j.id
           AND o.state IN @holds_key@))
 ORDER BY j.seq DESC
 LIMIT %(limit)s
   FOR UPDATE OF j SKIP LOCKED;

-- name: bulk_cancel_batch
-- the next batch of a bulk cancel: jobs in %(states)s matching the filters, running ones
-- only if not flagged yet
SELECT j.* FROM @schema@.jobs j
 WHERE j.state = ANY(%(states)s::text[])
   AND NOT (j.state IN @leased@ AND j.cancel_requested)
   AND (%(queue)s::text IS NULL OR j.queue = %(queue)s::text)
   AND (%(task)s::text IS NULL OR j.task = %(task)s::text)
 ORDER BY j.seq DESC
 LIMIT %(limit)s
   FOR UPDATE OF j SKIP LOCKED;

-- name: notify
SELECT pg_notify('@channel@', %(queue)s);

-- name: pool_names
SELECT name FROM @schema@.pools;

-- name: set_pool
INSERT INTO @schema@.pools (name, size) VALUES (%(name)s, %(size)s)
ON CONFLICT (name) DO UPDATE SET size = excluded.size;

-- name: set_parallelism
UPDATE @schema@.settings SET parallelism = %(limit)s::integer;

-- name: get_parallelism
SELECT parallelism FROM @schema@.settings;

-- name: next_run_at
SELECT min(run_at) FROM @schema@.jobs
 WHERE queue = ANY(@schema@.unpaused(%(queues)s::text[])) AND state IN @pending@;

-- name: pause_queue
INSERT INTO @schema@.paused_queues (queue, paused_at) VALUES (%(queue)s, %(now)s)
ON CONFLICT DO NOTHING
RETURNING queue;

-- name: resume_queue
DELETE FROM @schema@.paused_queues WHERE queue = %(queue)s RETURNING queue;

-- name: paused_queues
SELECT queue FROM @schema@.paused_queues;

-- name: report_worker
INSERT INTO @schema@.workers (id, seen_at, report) VALUES (%(id)s, %(now)s, %(report)s)
ON CONFLICT (id) DO UPDATE SET seen_at = excluded.seen_at, report = excluded.report;

-- name: list_workers
SELECT report, seen_at FROM @schema@.workers ORDER BY id;

-- name: prune_workers
DELETE FROM @schema@.workers WHERE seen_at < %(older_than)s;

-- name: report_autoscaler
INSERT INTO @schema@.autoscalers (name, updated_at, report) VALUES (%(name)s, %(now)s, %(report)s)
ON CONFLICT (name) DO UPDATE SET updated_at = excluded.updated_at, report = excluded.report;

-- name: list_autoscalers
SELECT report, updated_at FROM @schema@.autoscalers ORDER BY name;

-- name: prune_autoscalers
DELETE FROM @schema@.autoscalers WHERE updated_at < %(older_than)s;

-- name: queue_stats
-- the live jobs of each queue from the counters job_counts (migration 15: the shards summed);
-- the later ones and the first run_at from jobs_due, per queue: a range of the later entries
-- and one entry (the waiting jobs that are due are not read)
SELECT c.queue, c.pending - l.later, l.later, c.running,
       CASE WHEN f.first <= %(now)s THEN %(now)s - f.first ELSE 0 END
  FROM (SELECT k.queue,
               coalesce(sum(k.n) FILTER (WHERE k.state IN @pending@), 0) AS pending,
               coalesce(sum(k.n) FILTER (WHERE k.state = 'running'), 0) AS running
          FROM @schema@.job_counts k
         WHERE k.state IN @live@
         GROUP BY k.queue
        HAVING sum(k.n) <> 0) c,
       LATERAL (SELECT count(*) AS later FROM @schema@.jobs j
                 WHERE j.queue = c.queue AND j.state IN @pending@
                   AND j.run_at > %(now)s::double precision) l,
       LATERAL (SELECT min(j.run_at) AS first FROM @schema@.jobs j
                 WHERE j.queue = c.queue AND j.state IN @pending@) f
 ORDER BY c.queue COLLATE "C";

-- name: pool_stats
SELECT p.name, p.size, coalesce(u.used, 0)
  FROM @schema@.pools p
  LEFT JOIN (SELECT pool, sum(pool_slots) AS used FROM @schema@.jobs
              WHERE state = 'running' AND lease_expires_at > %(now)s::double precision
              GROUP BY pool) u ON u.pool = p.name
 ORDER BY p.name COLLATE "C";

-- name: count_by_state
-- the counters job_counts (migration 15), their shards summed; the most shards of one
-- (queue, state) last, which says when to fold the shards of backends that are gone
SELECT queue, state, sum(n), count(*) FROM @schema@.job_counts GROUP BY queue, state;

-- name: fold_counts
SELECT @schema@.fold_counts();

-- name: prune
-- at most %(limit)s of them (NULL: no limit)
DELETE FROM @schema@.jobs
 WHERE id IN (SELECT id FROM @schema@.jobs
               WHERE state IN @terminal@ AND finished_at < %(older_than)s
               LIMIT %(limit)s);

-- name: overflowing
-- live jobs holding a count that one more would overflow (typed columns refuse other damage)
SELECT id, attempt, tries, pool_slots FROM @schema@.jobs
 WHERE state IN @live@
   AND (greatest(attempt, tries, pool_slots) >= %(limit)s
        OR least(attempt, tries, pool_slots) <= -%(limit)s)
   FOR UPDATE;

-- name: bury
-- a job that cannot be read, made dead by itself; the counts that cannot be used are reset.
-- A running one is counted dead here (a waiting one by the trigger jobs_count_end); the
-- subquery reads the row as it was before this statement
WITH b AS (
UPDATE @schema@.jobs j SET
    state = 'dead', error_type = %(etype)s, error_message = %(emsg)s, error_traceback = '',
    finished_at = %(now)s::double precision, lease_expires_at = NULL,
    attempt = CASE WHEN abs(attempt::bigint) >= %(limit)s THEN 0 ELSE attempt END,
    tries = CASE WHEN abs(tries::bigint) >= %(limit)s THEN 0 ELSE tries END,
    pool_slots = CASE WHEN abs(pool_slots::bigint) >= %(limit)s THEN 1 ELSE pool_slots END
 WHERE j.id = %(id)s
RETURNING j.queue, (SELECT o.state FROM @schema@.jobs o WHERE o.id = j.id) AS was
)
INSERT INTO @schema@.job_minutes AS m (minute, queue, series, shard, n)
SELECT floor(%(now)s::double precision / 60) * 60, b.queue, 'dead', pg_backend_pid(), 1
  FROM b WHERE b.was = 'running'
ON CONFLICT (minute, queue, series, shard) DO UPDATE SET n = m.n + 1;

-- name: prune_minutes
-- job_stats' counters of the minutes before %(older_than)s
DELETE FROM @schema@.job_minutes WHERE minute < %(older_than)s::double precision;

-- name: fold_minutes
-- the shards (one per writing backend) of the minutes from %(from)s to before %(before)s,
-- which no finish writes any more, added up into shard 0: job_stats then reads one row per
-- (minute, queue, series) of them
WITH gone AS (
    DELETE FROM @schema@.job_minutes
     WHERE minute >= %(from)s::double precision AND minute < %(before)s::double precision
       AND shard <> 0
    RETURNING minute, queue, series, n
)
INSERT INTO @schema@.job_minutes AS m (minute, queue, series, shard, n)
SELECT minute, queue, series, 0, sum(n) FROM gone GROUP BY 1, 2, 3
ON CONFLICT (minute, queue, series, shard) DO UPDATE SET n = m.n + excluded.n;
