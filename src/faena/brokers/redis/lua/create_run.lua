-- create_run: ARGV[3] = the run as JSON: {id, pipeline, key, params, steps: [{id, task,
-- queue, args, kwargs, priority, pool, slots, max, timeout ('' = none), prefix (priority
-- rank), blocked (bool), name, rule, res ('1'/'0'), ups, downs, upn, pend (count of ups)}]}
-- in topological order.
-- All or nothing. Reply (JSON): ["ok", run] | ["held", run] | ["unknown_pool", pool].
absorb()
local run = cjson.decode(ARGV[3])
local held = redis.call('HGET', P .. ':runkeys', run.key)
if held then return cjson.encode({ 'held', run_view(held) }) end
for _, s in ipairs(run.steps) do
  if redis.call('HEXISTS', K_POOLS, s.pool) == 0 then
    return cjson.encode({ 'unknown_pool', s.pool })
  end
end
local n = #run.steps
local seq = redis.call('HINCRBY', K_META, 'seq', n) - n
local woken, jobs = {}, {}
for i, s in ipairs(run.steps) do
  local state, run_at = 'queued', NOW_S
  if s.blocked then state, run_at = 'scheduled', BLOCKED_S end
  local rank = s.prefix .. string.format('%015d', seq + i)
  redis.call('HSET', jkey(s.id), 'id', s.id, 'task', s.task, 'queue', s.queue, 'args', s.args,
             'kwargs', s.kwargs, 'state', state, 'priority', s.priority, 'pool', s.pool,
             'slots', s.slots, 'attempt', '0', 'tries', '0', 'max', s.max,
             'timeout', s.timeout, 'enq', NOW_S, 'run_at', run_at, 'rank', rank,
             'run', run.id, 'sname', s.name, 'rule', s.rule, 'ups', s.ups, 'downs', s.downs,
             'upn', s.upn, 'res', s.res, 'kw0', s.kwargs, 'pend', s.pend, 'fail', '0')
  redis.call('ZADD', K_ALL, seq + i, s.id)
  make_pending(s.id, rec(s.id))
  bump(D_COUNTS, s.queue .. '|' .. state, 1)
  if state == 'queued' then woken[s.queue] = true end
  jobs[i] = s.id
end
redis.call('HSET', run_key(run.id), 'pipeline', run.pipeline, 'key', run.key,
           'params', run.params, 'created', NOW_S, 'jobs', table.concat(jobs, ','))
redis.call('HSET', P .. ':runkeys', run.key, run.id)
local rseq = redis.call('HINCRBY', K_META, 'runseq', 1)
redis.call('ZADD', P .. ':runs', rseq, run.id)
redis.call('ZADD', P .. ':runs:' .. run.pipeline, rseq, run.id)
flush()
wake(woken)
return cjson.encode({ 'ok', run_view(run.id) })
