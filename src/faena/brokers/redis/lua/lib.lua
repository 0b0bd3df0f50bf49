-- Shared by every faena script. The loader prepends F (the stored fields, in the order the
-- Python side reads them) and I (field name -> position), then appends one entry script.
--
-- ARGV[1] is the key prefix with its hash tag ("{faena}"), ARGV[2] the caller's clock ("now"),
-- so time only ever comes from the injected clock and never from the server.
local P = ARGV[1]
local NOW_S = ARGV[2]
local NOW = tonumber(NOW_S)

local K_META = P .. ':meta'        -- hash: schema, seq, par
local K_POOLS = P .. ':pools'      -- hash: pool -> size
local K_USED = P .. ':used'        -- hash: pool -> slots held by live leases
local K_COUNTS = P .. ':counts'    -- hash: "queue|state" -> jobs
local K_RUNNING = P .. ':running'  -- zset: job id by lease deadline
local K_ALL = P .. ':all'          -- zset: job id by enqueue sequence
local K_DONE = P .. ':done'        -- zset: terminal job id by finished_at
local K_IDEM = P .. ':idem'        -- hash: idempotency key -> job id
local CHANNEL = P .. ':wake'       -- pub/sub: a queue name when work may be runnable

local PENDING = { scheduled = true, queued = true, failed = true }
local HOLDS_KEY = { scheduled = true, queued = true, running = true, succeeded = true,
                    failed = true }

local function jkey(id) return P .. ':j:' .. id end
local function st_key(state) return P .. ':st:' .. state end
local function pend_key(q) return P .. ':pend:' .. q end
local function delayed_key(q) return P .. ':delayed:' .. q end
local function subs_key(q) return P .. ':subs:' .. q end
local function ready_key(q, sub) return P .. ':ready:' .. q .. '|' .. sub end

-- A rank is 16 hex digits of inverted priority then 15 digits of sequence: the lowest rank
-- runs first. Ready sets hold rank..id with score 0, so they are ordered by rank.
local function seq_of(rank) return tonumber(string.sub(rank, 17, 31)) end

local function rec(id)
  local r = redis.call('HMGET', jkey(id), unpack(F))
  if not r[I.id] then return nil end
  return r
end

-- Write changes (a flat list: name, value; false deletes) to the hash and to the record r.
local function put(id, r, changes)
  local set, del = {}, {}
  for i = 1, #changes, 2 do
    local name, value = changes[i], changes[i + 1]
    r[I[name]] = value
    if value then
      set[#set + 1] = name
      set[#set + 1] = value
    else
      del[#del + 1] = name
    end
  end
  if #set > 0 then redis.call('HSET', jkey(id), unpack(set)) end
  if #del > 0 then redis.call('HDEL', jkey(id), unpack(del)) end
end

-- Keep the per-state index and the (queue, state) counters in step with a state change.
local function move_state(id, r, old)
  local new = r[I.state]
  if old == new then return end
  local q = r[I.queue]
  redis.call('HINCRBY', K_COUNTS, q .. '|' .. old, -1)
  redis.call('HINCRBY', K_COUNTS, q .. '|' .. new, 1)
  redis.call('ZREM', st_key(old), id)
  redis.call('ZADD', st_key(new), seq_of(r[I.rank]), id)
end

-- A pending job is in its queue's pend set (by run_at) and either ready (due) or delayed.
local function make_pending(id, r)
  local q = r[I.queue]
  redis.call('ZADD', pend_key(q), r[I.run_at], id)
  if tonumber(r[I.run_at]) <= NOW then
    local sub = r[I.pool] .. '|' .. r[I.slots]
    redis.call('ZADD', ready_key(q, sub), 0, r[I.rank] .. id)
    redis.call('SADD', subs_key(q), sub)
  else
    redis.call('ZADD', delayed_key(q), r[I.run_at], id)
  end
end

local function drop_pending(id, r)
  local q = r[I.queue]
  redis.call('ZREM', pend_key(q), id)
  redis.call('ZREM', ready_key(q, r[I.pool] .. '|' .. r[I.slots]), r[I.rank] .. id)
  redis.call('ZREM', delayed_key(q), id)
end

local function end_lease(id, r)
  redis.call('ZREM', K_RUNNING, id)
  redis.call('HINCRBY', K_USED, r[I.pool], -tonumber(r[I.slots]))
end

local function set_done(id)
  redis.call('ZADD', K_DONE, NOW_S, id)
end

local function wake(queues)
  for q in pairs(queues) do redis.call('PUBLISH', CHANNEL, q) end
end

-- Leases that ran out: the worker is presumed dead and the attempt counts (lifecycle.expire).
local function expire_all()
  local out = {}
  local ids = redis.call('ZRANGEBYSCORE', K_RUNNING, '-inf', NOW_S)
  for _, id in ipairs(ids) do
    local r = rec(id)
    if not r or r[I.state] ~= 'running' then
      redis.call('ZREM', K_RUNNING, id)
    else
      end_lease(id, r)
      if r[I.cancel] == '1' then
        put(id, r, { 'state', 'cancelled', 'finished', NOW_S, 'lease', false })
        set_done(id)
      elseif tonumber(r[I.tries]) >= tonumber(r[I.max]) then
        local msg = 'worker ' .. (r[I.worker] or 'None') ..
          ' stopped renewing its lease during attempt ' .. r[I.attempt] .. ' of ' .. r[I.max] ..
          ' (killed, out of memory, or lost its broker)'
        put(id, r, { 'state', 'dead', 'finished', NOW_S, 'lease', false,
                     'etype', 'WorkerLost', 'emsg', msg, 'etb', '' })
        set_done(id)
      else
        put(id, r, { 'state', 'queued', 'lease', false, 'worker', false })
        make_pending(id, r)
      end
      move_state(id, r, 'running')
      out[#out + 1] = r
    end
  end
  return out
end

-- Due delayed jobs (scheduled, or failed past their backoff) join their ready sets.
local function promote(q)
  local ids = redis.call('ZRANGEBYSCORE', delayed_key(q), '-inf', NOW_S, 'LIMIT', 0, 1000)
  for _, id in ipairs(ids) do
    local v = redis.call('HMGET', jkey(id), 'pool', 'slots', 'rank')
    if v[1] then
      local sub = v[1] .. '|' .. v[2]
      redis.call('ZADD', ready_key(q, sub), 0, v[3] .. id)
      redis.call('SADD', subs_key(q), sub)
    end
    redis.call('ZREM', delayed_key(q), id)
  end
end

local function pool_free(pool)
  local size = tonumber(redis.call('HGET', K_POOLS, pool) or '0')
  return size - tonumber(redis.call('HGET', K_USED, pool) or '0')
end

-- Ready sets are split by (pool, slots), so the head of each is the best job of its kind:
-- if the head does not fit its pool, nothing behind it does. Merging the heads in rank order
-- and skipping those that do not fit is exactly faena.core.pools.Admission.
local function heads(queues)
  local out = {}
  for _, q in ipairs(queues) do
    promote(q)
    for _, sub in ipairs(redis.call('SMEMBERS', subs_key(q))) do
      local key = ready_key(q, sub)
      local m = redis.call('ZRANGE', key, 0, 0)[1]
      if m then
        local bar = string.find(sub, '|', 1, true)
        out[#out + 1] = { key = key, m = m, pool = string.sub(sub, 1, bar - 1),
                          slots = tonumber(string.sub(sub, bar + 1)) }
      else
        redis.call('SREM', subs_key(q), sub)
      end
    end
  end
  return out
end

local function take(id, worker, deadline)
  local r = rec(id)
  local old = r[I.state]
  redis.call('ZREM', pend_key(r[I.queue]), id)
  put(id, r, { 'state', 'running', 'attempt', tostring(tonumber(r[I.attempt]) + 1),
               'tries', tostring(tonumber(r[I.tries]) + 1), 'worker', worker,
               'started', NOW_S, 'lease', deadline })
  redis.call('ZADD', K_RUNNING, deadline, id)
  redis.call('HINCRBY', K_USED, r[I.pool], tonumber(r[I.slots]))
  move_state(id, r, old)
  return r
end

local function claim(worker, limit, deadline, queues)
  local chosen = {}
  local par = redis.call('HGET', K_META, 'par')
  local par_free = nil
  if par then par_free = tonumber(par) - redis.call('ZCARD', K_RUNNING) end
  if limit <= 0 or (par_free and par_free <= 0) then return chosen end
  local hs = heads(queues)
  local free = {}
  while #chosen < limit and (not par_free or par_free > 0) do
    local best = nil
    for _, h in ipairs(hs) do
      if h.m then
        if free[h.pool] == nil then free[h.pool] = pool_free(h.pool) end
        if h.slots <= free[h.pool] and (not best or h.m < best.m) then best = h end
      end
    end
    if not best then break end
    redis.call('ZREM', best.key, best.m)
    chosen[#chosen + 1] = take(string.sub(best.m, 32), worker, deadline)
    free[best.pool] = free[best.pool] - best.slots
    if par_free then par_free = par_free - 1 end
    best.m = redis.call('ZRANGE', best.key, 0, 0)[1]
  end
  return chosen
end

-- Claim arguments start at ARGV[a]: worker, limit, lease deadline, n, then n queue names.
-- Returns the claim's reply and the index of the first argument after them.
local function claim_from(a)
  local nq = tonumber(ARGV[a + 3])
  local queues = {}
  for i = 1, nq do queues[i] = ARGV[a + 3 + i] end
  local reaped = expire_all()
  local jobs = claim(ARGV[a], tonumber(ARGV[a + 1]), ARGV[a + 2], queues)
  return { jobs, reaped }, a + 4 + nq
end

-- One outcome is 11 arguments: id, attempt, state, has_result, result, has_error, type,
-- message, traceback, retry_at ('' = now), max_attempts ('' = keep). 1 if written, else 0.
local function finish_one(a, woken)
  local id, attempt, state = ARGV[a], tonumber(ARGV[a + 1]), ARGV[a + 2]
  local r = rec(id)
  if not r or r[I.state] ~= 'running' or tonumber(r[I.attempt]) ~= attempt then return 0 end
  end_lease(id, r)
  local ch = {}
  if ARGV[a + 10] ~= '' then ch = { 'max', ARGV[a + 10] } end
  local has_error = ARGV[a + 5] == '1'
  if state == 'failed' then
    local run_at = ARGV[a + 9]
    if run_at == '' then run_at = NOW_S end
    for _, v in ipairs({ 'state', 'failed', 'run_at', run_at, 'lease', false, 'worker', false,
                         'etype', has_error and ARGV[a + 6], 'emsg', has_error and ARGV[a + 7],
                         'etb', has_error and ARGV[a + 8] }) do
      ch[#ch + 1] = v
    end
    put(id, r, ch)
    make_pending(id, r)
    woken[r[I.queue]] = true
  else
    for _, v in ipairs({ 'state', state, 'result', ARGV[a + 3] == '1' and ARGV[a + 4],
                         'finished', NOW_S, 'lease', false }) do
      ch[#ch + 1] = v
    end
    if has_error then
      for _, v in ipairs({ 'etype', ARGV[a + 6], 'emsg', ARGV[a + 7], 'etb', ARGV[a + 8] }) do
        ch[#ch + 1] = v
      end
    end
    put(id, r, ch)
    set_done(id)
  end
  move_state(id, r, 'running')
  return 1
end

-- Outcomes start at ARGV[a] with their count.
local function finish_from(a)
  local n = tonumber(ARGV[a])
  local done, woken = {}, {}
  for i = 0, n - 1 do done[i + 1] = finish_one(a + 1 + i * 11, woken) end
  wake(woken)
  return done
end
