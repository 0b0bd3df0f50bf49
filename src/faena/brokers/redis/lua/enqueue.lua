-- enqueue: ARGV[3] = a JSON array of groups of jobs that share their options (an
-- enqueue_many call is one group). A group is an array: its shared options as strings (task,
-- queue, priority, pool, slots, max_attempts, timeout ('' = none), priority rank (16 hex
-- digits)), then its jobs as columns (arrays of one string per job): ids, args, kwargs,
-- run_at, idempotency keys ('' = none, else '+' key).
-- Or, for one job (no JSON to decode): ARGV[3] = '1', ARGV[4..11] its options, ARGV[12..16]
-- its own fields, in the orders above.

-- One job without an idempotency key, the common enqueue, takes the intake (see absorb() in
-- lib.lua): its record and counter are written now, its index entries by the next call
-- that needs them. Reply as below.
if ARGV[3] == '1' and ARGV[16] == '' then
  local task, q, priority, pool, slots, max, timeout, prefix = unpack(ARGV, 4, 11)
  local id, run_at = ARGV[12], ARGV[15]
  if redis.call('HEXISTS', K_POOLS, pool) == 0 then
    return cjson.encode({ 'unknown_pool', pool })
  end
  if redis.call('EXISTS', jkey(id)) == 1 then -- sent again: the stored job
    return cjson.encode({ 'ok', { rec(id) } })
  end
  local state = 'queued'
  if tonumber(run_at) > NOW then state = 'scheduled' end
  -- until absorbed, 'rank' holds the priority part alone
  redis.call('HSET', jkey(id), 'id', id, 'task', task, 'queue', q, 'args', ARGV[13],
             'kwargs', ARGV[14], 'state', state, 'priority', priority, 'pool', pool,
             'slots', slots, 'attempt', '0', 'tries', '0', 'max', max,
             'timeout', timeout, 'enq', NOW_S, 'run_at', run_at, 'rank', prefix)
  redis.call('HINCRBY', K_COUNTS, q .. '|' .. state, 1)
  redis.call('RPUSH', K_INTAKE, id)
  redis.call('PUBLISH', CHANNEL, q)
  return 0
end

-- All or nothing: an unknown pool writes nothing. Reply: 0 if every job was created as asked,
-- else (JSON) ["unknown_pool", pool] or ["ok", per job: 0 if created as asked, else the
-- record of the job returned in its place].
absorb() -- jobs enqueued alone before these take their sequence numbers first
local groups
if ARGV[3] == '1' then
  groups = { { { unpack(ARGV, 4, 11) }, { ARGV[12] }, { ARGV[13] }, { ARGV[14] },
               { ARGV[15] }, { ARGV[16] } } }
else
  groups = cjson.decode(ARGV[3])
end
local n = 0
for _, g in ipairs(groups) do
  local pool = g[1][4]
  if redis.call('HEXISTS', K_POOLS, pool) == 0 then
    return cjson.encode({ 'unknown_pool', pool })
  end
  n = n + #g[2]
end

local function holder(key)
  local id = redis.call('HGET', K_IDEM, key)
  if not id then return nil end
  local r = rec(id)
  if r and HOLDS_KEY[r[I.state]] then return r end
  return nil
end

-- Each job takes the next sequence number. Adding them all to K_ALL with NX both indexes
-- the new jobs and finds the ids that exist already (a repeated call after a lost reply):
-- only when fewer were added than sent are the scores read back to tell which.
local seq = redis.call('HINCRBY', K_META, 'seq', n) - n
local members, ids = {}, {}
local i = 0
for _, g in ipairs(groups) do
  for _, id in ipairs(g[2]) do
    i = i + 1
    members[2 * i - 1] = seq + i
    members[2 * i] = id
    ids[i] = id
  end
end
local known = {}
if variadic('ZADD', K_ALL, members, 'NX') < n then
  for lo = 1, n, 1000 do
    local scores = redis.call('ZMSCORE', K_ALL, unpack(ids, lo, math.min(lo + 999, n)))
    for x = lo, math.min(lo + 999, n) do
      if tonumber(scores[x - lo + 1]) ~= seq + x then known[x] = true end
    end
  end
end

local out, woken, created = {}, {}, 0
local pend, ready, delayed = {}, {}, {} -- index writes, gathered per key
i = 0
for _, g in ipairs(groups) do
  local c = g[1]
  local task, q, priority, pool, slots, max, timeout, prefix =
    c[1], c[2], c[3], c[4], c[5], c[6], c[7], c[8]
  local sub = pool .. '|' .. slots
  local pkey, rkey, dkey = pend_key(q), ready_key(q, sub), delayed_key(q)
  local queued, scheduled = 0, 0
  local g_ids, g_args, g_kwargs, g_run_at, g_keys = g[2], g[3], g[4], g[5], g[6]
  for k = 1, #g_ids do
    i = i + 1
    local id, run_at, key = g_ids[k], g_run_at[k], nil
    if g_keys[k] ~= '' then key = string.sub(g_keys[k], 2) end
    local existing = nil
    if known[i] then
      existing = rec(id)
    elseif key then
      existing = holder(key)
      if existing then redis.call('ZREM', K_ALL, id) end
    end
    if existing then
      out[i] = existing
    else
      created = created + 1
      out[i] = 0
      local rank = prefix .. string.format('%015d', seq + i)
      local state = 'queued'
      -- (a run_at of now, the usual one, is told by its text: no number to parse)
      if run_at ~= NOW_S and tonumber(run_at) > NOW then state = 'scheduled' end
      redis.call('HSET', jkey(id), 'id', id, 'task', task, 'queue', q, 'args', g_args[k],
                 'kwargs', g_kwargs[k], 'state', state, 'priority', priority, 'pool', pool,
                 'slots', slots, 'attempt', '0', 'tries', '0', 'max', max,
                 'timeout', timeout, 'enq', NOW_S, 'run_at', run_at, 'rank', rank)
      if key then
        redis.call('HSET', jkey(id), 'ikey', key)
        redis.call('HSET', K_IDEM, key, id)
      end
      gather(pend, pkey, run_at, id)
      if state == 'queued' then
        gather(ready, rkey, 0, rank .. id)
        queued = queued + 1
      else
        gather(delayed, dkey, run_at, id)
        scheduled = scheduled + 1
      end
    end
  end
  if queued > 0 then
    bump(D_COUNTS, q .. '|queued', queued)
    redis.call('SADD', subs_key(q), sub)
  end
  if scheduled > 0 then bump(D_COUNTS, q .. '|scheduled', scheduled) end
  if queued + scheduled > 0 then woken[q] = true end
end
write_gathered('ZADD', pend)
write_gathered('ZADD', ready)
write_gathered('ZADD', delayed)
flush()
wake(woken)
if created == n then return 0 end
return cjson.encode({ 'ok', out })
