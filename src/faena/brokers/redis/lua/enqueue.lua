-- enqueue: ARGV[3] = a JSON array of jobs, each an array of strings: id, task, queue, args,
-- kwargs, priority, pool, slots, max_attempts, timeout ('' = none), idempotency key ('' =
-- none, else '+' key), run_at, priority rank (16 hex digits).
-- All or nothing: an unknown pool writes nothing. Reply: 0 if every job was created as asked,
-- else (JSON) ["unknown_pool", pool] or ["ok", per job: 0 if created as asked, else the
-- record of the job returned in its place].
local jobs = cjson.decode(ARGV[3])
local checked = {}
for _, j in ipairs(jobs) do
  if not checked[j[7]] then
    if redis.call('HEXISTS', K_POOLS, j[7]) == 0 then
      return cjson.encode({ 'unknown_pool', j[7] })
    end
    checked[j[7]] = true
  end
end

local function holder(key)
  local id = redis.call('HGET', K_IDEM, key)
  if not id then return nil end
  local r = rec(id)
  if r and HOLDS_KEY[r[I.state]] then return r end
  return nil
end

-- Index writes are gathered per key and sent as few variadic commands.
local batch, order = {}, {}
local function add(cmd, key, a, b)
  local e = batch[key]
  if not e then
    e = { cmd = cmd, args = {} }
    batch[key] = e
    order[#order + 1] = key
  end
  local t = e.args
  t[#t + 1] = a
  if b then t[#t + 1] = b end
end

local out, woken, subs = {}, {}, {}
local n = #jobs
local seq = redis.call('HINCRBY', K_META, 'seq', n) - n
-- Each job takes the next sequence number. Adding them all to K_ALL with NX both indexes
-- the new jobs and finds the ids that exist already (a repeated call after a lost reply):
-- only when fewer were added than sent are the scores read back to tell which.
local members = {}
for i, j in ipairs(jobs) do
  members[2 * i - 1] = seq + i
  members[2 * i] = j[1]
end
local added = 0
for lo = 1, #members, 1000 do
  added = added + redis.call('ZADD', K_ALL, 'NX', unpack(members, lo, math.min(lo + 999, #members)))
end
local known = {}
if added < n then
  local ids = {}
  for i, j in ipairs(jobs) do ids[i] = j[1] end
  local scores = redis.call('ZMSCORE', K_ALL, unpack(ids))
  for i = 1, n do
    if tonumber(scores[i]) ~= seq + i then known[i] = true end
  end
end
local created = 0
for i, j in ipairs(jobs) do
  local id, q = j[1], j[3]
  local key = nil
  if j[11] ~= '' then key = string.sub(j[11], 2) end
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
    local run_at = j[12]
    local state = 'queued'
    if tonumber(run_at) > NOW then state = 'scheduled' end
    local rank = j[13] .. string.format('%015d', seq + i)
    local fields = { 'id', id, 'task', j[2], 'queue', q, 'args', j[4], 'kwargs', j[5],
                     'state', state, 'priority', j[6], 'pool', j[7], 'slots', j[8],
                     'attempt', '0', 'tries', '0', 'max', j[9], 'timeout', j[10],
                     'enq', NOW_S, 'run_at', run_at, 'rank', rank }
    if key then
      fields[#fields + 1] = 'ikey'
      fields[#fields + 1] = key
      redis.call('HSET', K_IDEM, key, id)
    end
    redis.call('HSET', jkey(id), unpack(fields))
    add('ZADD', pend_key(q), run_at, id)
    if state == 'queued' then
      local sub = j[7] .. '|' .. j[8]
      add('ZADD', ready_key(q, sub), 0, rank .. id)
      subs[q .. '\n' .. sub] = true
    else
      add('ZADD', delayed_key(q), run_at, id)
    end
    bump(D_COUNTS, q .. '|' .. state, 1)
    woken[q] = true
    out[i] = 0
  end
end
for _, key in ipairs(order) do
  local e = batch[key]
  local args = e.args
  for lo = 1, #args, 1000 do
    redis.call(e.cmd, key, unpack(args, lo, math.min(lo + 999, #args)))
  end
end
for qs in pairs(subs) do
  local nl = string.find(qs, '\n', 1, true)
  redis.call('SADD', subs_key(string.sub(qs, 1, nl - 1)), string.sub(qs, nl + 1))
end
flush()
wake(woken)
if created == n then return 0 end
return cjson.encode({ 'ok', out })
