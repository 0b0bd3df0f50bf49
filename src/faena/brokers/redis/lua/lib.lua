-- Shared by every faena function. The loader prepends F (the stored field names, in the order
-- the Python side reads them), replaces each I.<field> with that field's position in F and
-- FIELD_LIST with the quoted names, then appends one registered function per entry file
-- (see scripts.py); each starts with begin(args).
--
-- args[1] is the key prefix with its hash tag ("{faena}"), args[2] the caller's clock ("now"),
-- so time only ever comes from the injected clock and never from the server.
--
-- A field that holds no value is '' or absent (cleared by HDEL): both read back as None.
--
-- The library is loaded once and its functions are called many times: the values below are
-- set afresh by begin() at the start of every call (Redis runs one call at a time).
local ARGV, P, NOW_S, NOW
local K_META       -- hash: schema, seq, par
local K_POOLS      -- hash: pool -> size
local K_USED       -- hash: pool -> slots held by live leases
local K_COUNTS     -- hash: "queue|state" -> jobs
local K_RUNNING    -- zset: job id by lease deadline
local K_ALL        -- zset: job id by enqueue sequence
local K_DONE       -- zset: terminal job id by finished_at
local K_IDEM       -- hash: idempotency key -> job id
local K_INTAKE     -- list: ids of jobs enqueued one at a time, written but not indexed yet
local K_PAUSED     -- hash: paused queue -> paused_at (claims and next skip these queues)
local CHANNEL      -- pub/sub: a queue name when work may be runnable

-- Counter changes are summed while a call runs and written once by flush() at its end, so
-- a finish and a claim in one call cost no write where they cancel out.
local D_COUNTS, D_USED = {}, {}
-- job_stats' per-minute series (faena.core.stats): "queue|series" -> events of this call,
-- added by flush() to the hash P:m:<minute of now> (expiring after STATS_KEEP_SECONDS; the
-- zset P:minutes lists the minutes for prune)
local D_ENDS = {}
-- a pipeline step's hand-off to its downstreams (defined in pipelines.lua, appended below)
local hand_off

local function begin(args)
  ARGV = args
  if args[1] ~= P then
    P = args[1]
    K_META, K_POOLS, K_USED = P .. ':meta', P .. ':pools', P .. ':used'
    K_COUNTS, K_RUNNING, K_ALL = P .. ':counts', P .. ':running', P .. ':all'
    K_DONE, K_IDEM, CHANNEL = P .. ':done', P .. ':idem', P .. ':wake'
    K_INTAKE, K_PAUSED = P .. ':intake', P .. ':paused'
  end
  NOW_S = args[2]
  NOW = tonumber(NOW_S)
  D_COUNTS, D_USED, D_ENDS = {}, {}, {}
end

-- The state sets of faena.core.states, filled in by the loader (STATES_<NAME>: see
-- faena.brokers.literals); never list states here by hand.
local PENDING = STATES_PENDING
local LEASED = STATES_LEASED
local HOLDS_KEY = STATES_HOLDS_KEY
local RETRYABLE = STATES_RETRYABLE
-- states with an index of their own (zset by enqueue sequence), for operators' listings
-- (scripts.INDEXED: a layout of the stored data, not a rule of the lifecycle)
local INDEXED = STATES_INDEXED

local function jkey(id) return P .. ':j:' .. id end
local function st_key(state) return P .. ':st:' .. state end
local function pend_key(q) return P .. ':pend:' .. q end
local function delayed_key(q) return P .. ':delayed:' .. q end
local function subs_key(q) return P .. ':subs:' .. q end
local function ready_key(q, sub) return P .. ':ready:' .. q .. '|' .. sub end

-- A rank is 16 hex digits of inverted priority then 15 digits of sequence: the lowest rank
-- runs first. Ready sets hold rank..id with score 0, so they are ordered by rank.
local function seq_of(rank)
  if type(rank) ~= 'string' then return 0 end
  return tonumber(string.sub(rank, 17, 31)) or 0
end

-- The whole record (an array in F order), or nil if there is no such job.
local function rec(id)
  local r = redis.call('HMGET', jkey(id), FIELD_LIST)
  if not r[I.id] then return nil end
  return r
end

-- Write changes (a flat list: field position, value; false deletes) to the hash and to r.
local function put(id, r, changes)
  local set, del = {}, {}
  for i = 1, #changes, 2 do
    local at, value = changes[i], changes[i + 1]
    r[at] = value
    if value then
      set[#set + 1] = F[at]
      set[#set + 1] = value
    else
      del[#del + 1] = F[at]
    end
  end
  if #set > 0 then redis.call('HSET', jkey(id), unpack(set)) end
  if #del > 0 then redis.call('HDEL', jkey(id), unpack(del)) end
end

-- The attempt history (faena.core.attempts): a JSON array in the hash's 'attempts' field,
-- outside F so claims and listings never read it. A field that is not a JSON array (damaged
-- outside faena) starts over: it never makes a call fail.
local function history(raw)
  if not raw or raw == '' then return {} end
  local ok, v = pcall(cjson.decode, raw)
  if not ok or type(v) ~= 'table' then return {} end
  local n = #v
  for k in pairs(v) do
    if type(k) ~= 'number' or k < 1 or k > n or k % 1 ~= 0 then return {} end
  end
  return v
end

-- Add the end of attempt `attempt` (started by `worker` at `started`, both may be nil or '')
-- as `outcome`, now; the oldest records go past ATTEMPTS_KEPT. The times are kept as the
-- text the caller's clock gave, so they read back exactly.
local function add_attempt(id, attempt, worker, started, outcome, etype, emsg, etb)
  local key = jkey(id)
  local list = history(redis.call('HGET', key, 'attempts'))
  local entry = { n = tonumber(attempt), f = NOW_S, o = outcome }
  if worker and worker ~= '' then entry.w = worker end
  if started and started ~= '' then entry.s = started end
  if etype and etype ~= '' then entry.et, entry.em, entry.tb = etype, emsg or '', etb or '' end
  list[#list + 1] = entry
  while #list > ATTEMPTS_KEPT do table.remove(list, 1) end
  redis.call('HSET', key, 'attempts', cjson.encode(list))
end

local function bump(t, k, d) t[k] = (t[k] or 0) + d end

local function flush()
  for k, d in pairs(D_COUNTS) do
    if d ~= 0 then redis.call('HINCRBY', K_COUNTS, k, d) end
  end
  for k, d in pairs(D_USED) do
    if d ~= 0 then redis.call('HINCRBY', K_USED, k, d) end
  end
  if next(D_ENDS) then
    local minute = tostring(math.floor(NOW / 60) * 60)
    local key, first = P .. ':m:' .. minute, false
    for k, d in pairs(D_ENDS) do
      -- the first event of a field: the minute may be new (set its expiry, list it)
      if redis.call('HINCRBY', key, k, d) == d then first = true end
    end
    if first then
      redis.call('EXPIRE', key, STATS_KEEP_SECONDS)
      redis.call('ZADD', P .. ':minutes', minute, minute)
    end
  end
  D_COUNTS, D_USED, D_ENDS = {}, {}, {}
end

-- The series a change of state counts in (faena.core.stats.ending): into a terminal state
-- from a live one, that state; a running job failing, or lost with attempts left (not a
-- release, `released`), 'retried'.
local TERMINAL = STATES_TERMINAL
local function ending(old, new, released)
  if TERMINAL[new] then
    if TERMINAL[old] then return nil end
    return new
  end
  if old == 'running' and (new == 'failed' or (new == 'queued' and not released)) then
    return 'retried'
  end
  return nil
end

-- Keep the (queue, state) counters, the state indexes and the per-minute series in step
-- with a state change (`released`: an attempt given back, which the series do not count).
local function move_state(id, r, old, released)
  local new = r[I.state]
  if old == new then return end
  local q = r[I.queue]
  bump(D_COUNTS, q .. '|' .. old, -1)
  bump(D_COUNTS, q .. '|' .. new, 1)
  local series = ending(old, new, released)
  if series then bump(D_ENDS, q .. '|' .. series, 1) end
  if INDEXED[old] then redis.call('ZREM', st_key(old), id) end
  if INDEXED[new] then redis.call('ZADD', st_key(new), seq_of(r[I.rank]), id) end
end

-- What faena.core.records.unreadable checks, on the text of a record: a record that fails
-- is made dead by itself (bury) before anything else is written for it, so a corrupt
-- record never makes a function fail halfway, after some of its writes (Redis keeps those).
local STATES = STATES_ALL
-- (position, Job field, neutral value, whether it is a count: then below 2147483647, as
-- faena.core.records.COUNT_LIMIT, so one more is still an integer that tostring writes back
-- as digits)
local INTS = { { I.priority, 'priority', '0' }, { I.slots, 'pool_slots', '1', true },
               { I.attempt, 'attempt', '0', true }, { I.tries, 'tries', '0', true },
               { I.max, 'max_attempts', '1' } }
local NUMS = { { I.enq, 'enqueued_at' }, { I.run_at, 'run_at' } }
local OPTIONAL_NUMS = { { I.timeout, 'timeout' }, { I.started, 'started_at' },
                        { I.finished, 'finished_at' }, { I.lease, 'lease_expires_at' } }
local CORRUPT_TEXT = CORRUPT_MESSAGE
local EXPECTED = CORRUPT_EXPECTED

local function is_int(v, count)
  if type(v) ~= 'string' or not string.find(v, '^-?%d+$') then return false end
  if not count or #v < 10 then return true end
  return #v <= 11 and math.abs(tonumber(v)) < 2147483647
end

-- Lua reads hex ('0x10') and Python does not; Python reads '1_0' and Lua does not
local function is_num(v)
  if type(v) ~= 'string' then return false end
  local n = tonumber(v)
  return n ~= nil and n == n and not string.find(v, '[xX]')
end

local function is_opt_num(v) return not v or v == '' or is_num(v) end

-- Whether every field of r can be read, as unreadable() below finds, cheaply for the text
-- faena writes (a claim checks each job it takes): counts of up to 9 digits, decimals; any
-- other text takes the full test. Absent fields read as false. (A library's top level
-- cannot reach string.*: Redis runs it with a restricted global table.)
local COUNT, DECIMAL = '^%d%d?%d?%d?%d?%d?%d?%d?%d?$', '^%d+%.?%d*$'

local function count_ok(v) return v and (string.find(v, COUNT) or is_int(v, true)) end
local function num_ok(v) return v and (string.find(v, DECIMAL) or is_num(v)) end
local function opt_ok(v) return not v or v == '' or string.find(v, DECIMAL) or is_num(v) end

local function sound(r)
  local v = r[I.priority]
  if not (STATES[r[I.state]] and v and string.find(v, '^-?%d+$')) then return false end
  v = r[I.max]
  if not (v and string.find(v, '^-?%d+$')) then return false end
  return count_ok(r[I.slots]) and count_ok(r[I.attempt]) and count_ok(r[I.tries])
    and num_ok(r[I.enq]) and num_ok(r[I.run_at]) and opt_ok(r[I.timeout])
    and opt_ok(r[I.started]) and opt_ok(r[I.finished]) and opt_ok(r[I.lease])
end

-- The first field of r that cannot be read, and its value (nil if every one can be); with
-- `fix`, a change list that puts a neutral value in each unreadable field.
local function unreadable(r, fix)
  local field, value
  if not STATES[r[I.state]] then
    field, value = 'state', r[I.state]
    if not fix then return field, value end
  end
  for _, c in ipairs(INTS) do
    local v = r[c[1]]
    if not is_int(v, c[4]) then
      if not field then field, value = c[2], v end
      if not fix then return field, value end
      fix[#fix + 1] = c[1]
      fix[#fix + 1] = c[3]
    end
  end
  for _, c in ipairs(NUMS) do
    local v = r[c[1]]
    if not is_num(v) then
      if not field then field, value = c[2], v end
      if not fix then return field, value end
      fix[#fix + 1] = c[1]
      fix[#fix + 1] = NOW_S
    end
  end
  for _, c in ipairs(OPTIONAL_NUMS) do
    local v = r[c[1]]
    if not is_opt_num(v) then
      if not field then field, value = c[2], v end
      if not fix then return field, value end
      fix[#fix + 1] = c[1]
      fix[#fix + 1] = ''
    end
  end
  return field, value
end

local function shown(v)
  if not v then return 'absent' end
  if #v > 80 then v = string.sub(v, 1, 80) .. '...(cut)' end
  return "'" .. v .. "'"
end

-- The slots a record holds while it runs: 0 if its slots cannot be read.
local function slots_of(r)
  if is_int(r[I.slots], true) then return tonumber(r[I.slots]) end
  return 0
end

-- Make a record that cannot be read dead by itself (see unreadable): each unreadable field
-- gets a neutral value, so the record can be read (listed, retried by hand), and the
-- message names the first and the value it held. The caller drops it from its indexes.
local function bury(id, r, field, value)
  local parts = { job_id = id, field = field, value = shown(value),
                  expected = EXPECTED[field] or 'a value faena wrote' }
  local msg = string.gsub(CORRUPT_TEXT, '{([%w_]+)}', parts)
  local old = r[I.state]
  if not STATES[old] then old = 'queued' end  -- it was found where queued jobs wait
  local ch = {}
  unreadable(r, ch)
  local more = { I.state, 'dead', I.finished, NOW_S, I.lease, '', I.etype, 'CorruptJobError',
                 I.emsg, msg, I.etb, '' }
  for i = 1, #more do ch[#ch + 1] = more[i] end
  put(id, r, ch)
  redis.call('ZADD', K_DONE, NOW_S, id)
  move_state(id, r, old)
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
  bump(D_USED, r[I.pool], -slots_of(r))
end

local function wake(queues)
  for q in pairs(queues) do redis.call('PUBLISH', CHANNEL, q) end
end

-- Leases that ran out: the worker is presumed dead and the attempt counts (lifecycle.expire).
local function expire_all()
  local out, woken = {}, {}
  local ids = redis.call('ZRANGEBYSCORE', K_RUNNING, '-inf', NOW_S)
  for _, id in ipairs(ids) do
    local r = rec(id)
    if not r or r[I.state] ~= 'running' then
      redis.call('ZREM', K_RUNNING, id)
    elseif not sound(r) then
      end_lease(id, r)
      bury(id, r, unreadable(r))
      out[#out + 1] = r
    else
      end_lease(id, r)
      local lost_by = r[I.worker]
      if not lost_by or lost_by == '' then lost_by = 'None' end
      add_attempt(id, r[I.attempt], r[I.worker], r[I.started], 'lost', 'WorkerLost',
        'worker ' .. lost_by .. ' stopped renewing its lease during attempt ' .. r[I.attempt] ..
        ' of ' .. r[I.max] .. ' (killed, out of memory, or lost its broker)', '')
      if r[I.cancel] == '1' then
        put(id, r, { I.state, 'cancelled', I.finished, NOW_S, I.lease, '' })
        redis.call('ZADD', K_DONE, NOW_S, id)
      elseif tonumber(r[I.tries]) >= tonumber(r[I.max]) then
        local worker = r[I.worker]
        if not worker or worker == '' then worker = 'None' end
        local msg = 'worker ' .. worker .. ' stopped renewing its lease during attempt ' ..
          r[I.attempt] .. ' of ' .. r[I.max] .. ' (killed, out of memory, or lost its broker)'
        put(id, r, { I.state, 'dead', I.finished, NOW_S, I.lease, '',
                     I.etype, 'WorkerLost', I.emsg, msg, I.etb, '' })
        redis.call('ZADD', K_DONE, NOW_S, id)
      else
        put(id, r, { I.state, 'queued', I.lease, '', I.worker, '' })
        make_pending(id, r)
      end
      move_state(id, r, 'running')
      if r[I.state] ~= 'queued' and redis.call('HEXISTS', jkey(id), 'run') == 1 then
        hand_off(id, woken)
      end
      out[#out + 1] = r
    end
  end
  wake(woken)
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
  local used = tonumber(redis.call('HGET', K_USED, pool) or '0') + (D_USED[pool] or 0)
  return size - used
end

-- Variadic commands in slices of at most 1000 arguments after the key (and an optional flag
-- such as NX); returns the sum of the replies.
local function variadic(cmd, key, args, flag)
  local total = 0
  for lo = 1, #args, 1000 do
    local hi = math.min(lo + 999, #args)
    if flag then
      total = total + redis.call(cmd, key, flag, unpack(args, lo, hi))
    else
      total = total + redis.call(cmd, key, unpack(args, lo, hi))
    end
  end
  return total
end

-- Index writes of one call, gathered per key and sent as one variadic command each by
-- write_gathered() (a claim of n jobs costs one ZREM per ready set, not n).
local function gather(t, key, a, b)
  local args = t[key]
  if not args then
    args = {}
    t[key] = args
  end
  args[#args + 1] = a
  if b ~= nil then args[#args + 1] = b end
end

local function write_gathered(cmd, t)
  for key, args in pairs(t) do variadic(cmd, key, args) end
end

-- A job enqueued alone is written (record, counter) and its id pushed on the intake list,
-- which is all its enqueue costs; its sequence number and index entries come here, from the
-- first function after it that reads or changes the indexes (each calls absorb() first), in
-- the order the jobs came. A batch of ids is read at a time, so a long intake needs no more
-- memory than a batch.
local function absorb()
  while true do
    local ids = redis.call('LRANGE', K_INTAKE, 0, 999)
    local n = #ids
    if n == 0 then return end
    redis.call('LTRIM', K_INTAKE, n, -1)
    local seq = redis.call('HINCRBY', K_META, 'seq', n) - n
    local all, pend, ready, delayed, subs = {}, {}, {}, {}, {}
    for i, id in ipairs(ids) do
      local v = redis.call('HMGET', jkey(id), 'queue', 'pool', 'slots', 'run_at', 'rank', 'state')
      if v[1] then
        local q, rank = v[1], (v[5] or '') .. string.format('%015d', seq + i)
        redis.call('HSET', jkey(id), 'rank', rank)
        all[#all + 1] = seq + i
        all[#all + 1] = id
        if not (is_num(v[4]) and is_int(v[3], true) and STATES[v[6]]) then
          local r = rec(id)  -- its indexes cannot be written: dead by itself
          bury(id, r, unreadable(r))
        else
          gather(pend, pend_key(q), v[4], id)
          if v[6] == 'queued' then
            local sub = v[2] .. '|' .. v[3]
            gather(ready, ready_key(q, sub), 0, rank .. id)
            gather(subs, subs_key(q), sub)
          else
            gather(delayed, delayed_key(q), v[4], id)
          end
        end
      end
    end
    variadic('ZADD', K_ALL, all)
    write_gathered('ZADD', pend)
    write_gathered('ZADD', ready)
    write_gathered('ZADD', delayed)
    write_gathered('SADD', subs)
  end
end

-- Ready sets are split by (pool, slots), so the head of each is the best job of its kind:
-- if the head does not fit its pool, nothing behind it does. Merging the heads in rank order
-- and skipping those that do not fit is exactly faena.core.pools.Admission. A claim of up
-- to `limit` jobs never takes more than `limit` from one set, so that many are read at once.
local function heads(queues, limit)
  local out = {}
  for _, q in ipairs(queues) do
    promote(q)
    for _, sub in ipairs(redis.call('SMEMBERS', subs_key(q))) do
      local key = ready_key(q, sub)
      local list = redis.call('ZRANGE', key, 0, limit - 1)
      local bar = string.find(sub, '|', 1, true)
      if #list > 0 and not is_int(string.sub(sub, bar + 1), true) then
        -- jobs indexed with slots that cannot be read: each is made dead by itself
        for _, m in ipairs(list) do
          local id = string.sub(m, 32)
          local r = rec(id)
          if r then
            redis.call('ZREM', pend_key(q), id)
            bury(id, r, 'pool_slots', r[I.slots])
          end
        end
        variadic('ZREM', key, list)
      elseif #list > 0 then
        out[#out + 1] = { key = key, list = list, at = 1, m = list[1],
                          pool = string.sub(sub, 1, bar - 1),
                          slots = tonumber(string.sub(sub, bar + 1)) }
      else
        redis.call('SREM', subs_key(q), sub)
      end
    end
  end
  return out
end

-- `w` gathers the index writes (pend: ZREM per queue, running: ZADD) of the whole claim.
local function take(id, worker, deadline, w)
  local r = rec(id)
  gather(w.pend, pend_key(r[I.queue]), id)
  if not sound(r) then
    bury(id, r, unreadable(r))
    return nil
  end
  local old = r[I.state]
  local attempt = tostring(tonumber(r[I.attempt]) + 1)
  local tries = tostring(tonumber(r[I.tries]) + 1)
  r[I.state], r[I.attempt], r[I.tries], r[I.worker], r[I.started], r[I.lease] =
    'running', attempt, tries, worker, NOW_S, deadline
  redis.call('HSET', jkey(id), 'state', 'running', 'attempt', attempt, 'tries', tries,
             'worker', worker, 'started', NOW_S, 'lease', deadline)
  gather(w.running, K_RUNNING, deadline, id)
  bump(D_USED, r[I.pool], tonumber(r[I.slots]))
  move_state(id, r, old)
  return r
end

-- Returns the claimed records and 1 if a runnable job was left because its pool or the
-- parallelism cap was full (the worker then polls briefly: no wake-up comes when a slot frees).
local function claim(worker, limit, deadline, queues)
  local chosen = {}
  if limit <= 0 then return chosen, 0 end
  local par = redis.call('HGET', K_META, 'par')
  local par_free = nil
  if par then par_free = tonumber(par) - redis.call('ZCARD', K_RUNNING) end
  local hs = heads(queues, limit)
  local free = {}
  local blocked = 0
  local w = { ready = {}, pend = {}, running = {} }
  while #chosen < limit do
    local best = nil
    for _, h in ipairs(hs) do
      if h.m then
        if par_free and par_free <= 0 then
          blocked = 1
          break
        end
        if free[h.pool] == nil then free[h.pool] = pool_free(h.pool) end
        if h.slots > free[h.pool] then
          blocked = 1
        elseif not best or h.m < best.m then
          best = h
        end
      end
    end
    if not best then break end
    gather(w.ready, best.key, best.m)
    local r = take(string.sub(best.m, 32), worker, deadline, w)
    if r then
      chosen[#chosen + 1] = r
      free[best.pool] = free[best.pool] - best.slots
      if par_free then par_free = par_free - 1 end
    end
    best.at = best.at + 1
    best.m = best.list[best.at]
  end
  write_gathered('ZREM', w.ready)
  write_gathered('ZREM', w.pend)
  write_gathered('ZADD', w.running)
  return chosen, blocked
end

-- The queues named by args[first..last] that are not paused, in their order.
local function unpaused(args, first, last)
  local queues = {}
  if last < first then return queues end
  if redis.call('EXISTS', K_PAUSED) == 0 then
    for i = first, last do queues[#queues + 1] = args[i] end
    return queues
  end
  local flags = redis.call('HMGET', K_PAUSED, unpack(args, first, last))
  for i = first, last do
    if not flags[i - first + 1] then queues[#queues + 1] = args[i] end
  end
  return queues
end

-- Claim arguments start at ARGV[a]: worker, limit, lease deadline, n, then n queue names.
-- Returns {claimed records, reaped records, 1 if saturated else 0}.
local function claim_from(a)
  local nq = tonumber(ARGV[a + 3])
  local queues = unpaused(ARGV, a + 4, a + 3 + nq)
  local reaped = expire_all()
  local jobs, blocked = claim(ARGV[a], tonumber(ARGV[a + 1]), ARGV[a + 2], queues)
  return { jobs, reaped, blocked }
end

-- One outcome is 11 arguments: id, attempt, state, has_result, result, has_error, type,
-- message, traceback, retry_at ('' = now), max_attempts ('' = keep). 1 if written, else 0.
-- `w` gathers the index writes of all the outcomes (running: ZREM, done: ZADD).
local function finish_one(a, woken, w)
  local id, attempt, state = ARGV[a], tonumber(ARGV[a + 1]), ARGV[a + 2]
  local v = redis.call('HMGET', jkey(id), 'state', 'attempt', 'queue', 'pool', 'slots',
                       'rank', 'run_at', 'worker', 'started', 'run')
  if v[1] ~= 'running' or tonumber(v[2]) ~= attempt then return 0 end
  if not is_int(v[5], true) then  -- damaged while it ran: dead by itself, the outcome unsaid
    local r = rec(id)
    gather(w.running, K_RUNNING, id)
    bury(id, r, unreadable(r))
    return 0
  end
  local r = {}
  r[I.state], r[I.queue], r[I.pool], r[I.slots], r[I.rank], r[I.run_at] =
    v[1], v[3], v[4], v[5], v[6], v[7]
  -- a success is not added: the job keeps that attempt (worker, started, finished) and get
  -- reads its record off the hash (core.lifecycle.with_row_attempt), so the common end
  -- reads and writes no history
  if ARGV[a + 5] == '1' then
    add_attempt(id, v[2], v[8], v[9], state, ARGV[a + 6], ARGV[a + 7], ARGV[a + 8])
  elseif state ~= 'succeeded' then
    add_attempt(id, v[2], v[8], v[9], state)
  end
  gather(w.running, K_RUNNING, id)
  bump(D_USED, r[I.pool], -slots_of(r))
  if state ~= 'failed' and ARGV[a + 5] ~= '1' and ARGV[a + 10] == '' then
    -- the common end (success, no error to keep): one HSET, no change list
    local result = ''
    if ARGV[a + 3] == '1' then result = ARGV[a + 4] end
    redis.call('HSET', jkey(id), 'state', state, 'result', result, 'finished', NOW_S,
               'lease', '')
    r[I.state] = state
    gather(w.done, K_DONE, NOW_S, id)
    move_state(id, r, 'running')
    if v[10] then hand_off(id, woken) end -- a pipeline step (the field is on steps only)
    return 1
  end
  local ch = {}
  if ARGV[a + 10] ~= '' then ch = { I.max, ARGV[a + 10] } end
  local has_error = ARGV[a + 5] == '1'
  local n = #ch
  if state == 'failed' then
    local run_at = ARGV[a + 9]
    if run_at == '' then run_at = NOW_S end
    local more = { I.state, 'failed', I.run_at, run_at, I.lease, '', I.worker, '',
                   I.etype, has_error and ARGV[a + 6], I.emsg, has_error and ARGV[a + 7],
                   I.etb, has_error and ARGV[a + 8] }
    for i = 1, #more do ch[n + i] = more[i] end
    put(id, r, ch)
    make_pending(id, r)
    woken[r[I.queue]] = true
  else
    local more = { I.state, state, I.result, ARGV[a + 3] == '1' and ARGV[a + 4] or '',
                   I.finished, NOW_S, I.lease, '' }
    if has_error then
      more[9], more[10], more[11], more[12], more[13], more[14] =
        I.etype, ARGV[a + 6], I.emsg, ARGV[a + 7], I.etb, ARGV[a + 8]
    end
    for i = 1, #more do ch[n + i] = more[i] end
    put(id, r, ch)
    gather(w.done, K_DONE, NOW_S, id)
  end
  move_state(id, r, 'running')
  if v[10] and state ~= 'failed' then hand_off(id, woken) end
  return 1
end

-- Outcomes start at ARGV[a] with their count.
local function finish_from(a)
  local n = tonumber(ARGV[a])
  local done, woken, w = {}, {}, { running = {}, done = {} }
  for i = 0, n - 1 do done[i + 1] = finish_one(a + 1 + i * 11, woken, w) end
  write_gathered('ZREM', w.running)
  write_gathered('ZADD', w.done)
  wake(woken)
  return done
end
