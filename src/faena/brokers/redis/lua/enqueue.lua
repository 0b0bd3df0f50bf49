-- enqueue: ARGV[3] = n, then 13 arguments per job: id, task, queue, args, kwargs, priority,
-- pool, slots, max_attempts, timeout ('' = none), idempotency key ('' = none, else '+' key),
-- run_at, priority rank (16 hex digits). All or nothing: an unknown pool writes nothing.
-- Reply: {'unknown_pool', pool} or {'ok', per job: 0 if created as asked, else the record
-- of the job returned in its place}.
local W = 13
local n = tonumber(ARGV[3])
local checked = {}
for i = 0, n - 1 do
  local pool = ARGV[4 + i * W + 6]
  if not checked[pool] then
    if redis.call('HEXISTS', K_POOLS, pool) == 0 then return { 'unknown_pool', pool } end
    checked[pool] = true
  end
end

local function holder(key)
  local id = redis.call('HGET', K_IDEM, key)
  if not id then return nil end
  local r = rec(id)
  if r and HOLDS_KEY[r[I.state]] then return r end
  return nil
end

local out, woken = {}, {}
local seq = redis.call('HINCRBY', K_META, 'seq', n) - n
for i = 0, n - 1 do
  local a = 4 + i * W
  local id, q, ikey = ARGV[a], ARGV[a + 2], ARGV[a + 10]
  local key = nil
  if ikey ~= '' then key = string.sub(ikey, 2) end
  local existing = nil
  if redis.call('EXISTS', jkey(id)) == 1 then existing = rec(id) end
  if not existing and key then existing = holder(key) end
  if existing then
    out[i + 1] = existing
  else
    seq = seq + 1
    local run_at = ARGV[a + 11]
    local state = 'queued'
    if tonumber(run_at) > NOW then state = 'scheduled' end
    local rank = ARGV[a + 12] .. string.format('%015d', seq)
    local fields = { 'id', id, 'task', ARGV[a + 1], 'queue', q, 'args', ARGV[a + 3],
                     'kwargs', ARGV[a + 4], 'state', state, 'priority', ARGV[a + 5],
                     'pool', ARGV[a + 6], 'slots', ARGV[a + 7], 'attempt', '0', 'tries', '0',
                     'max', ARGV[a + 8], 'enq', NOW_S, 'run_at', run_at, 'rank', rank }
    if ARGV[a + 9] ~= '' then
      fields[#fields + 1] = 'timeout'
      fields[#fields + 1] = ARGV[a + 9]
    end
    if key then
      fields[#fields + 1] = 'ikey'
      fields[#fields + 1] = key
      redis.call('HSET', K_IDEM, key, id)
    end
    redis.call('HSET', jkey(id), unpack(fields))
    redis.call('ZADD', K_ALL, seq, id)
    redis.call('ZADD', st_key(state), seq, id)
    redis.call('HINCRBY', K_COUNTS, q .. '|' .. state, 1)
    local r = { }
    r[I.queue], r[I.pool], r[I.slots], r[I.rank], r[I.run_at] =
      q, ARGV[a + 6], ARGV[a + 7], rank, run_at
    make_pending(id, r)
    woken[q] = true
    out[i + 1] = 0
  end
end
wake(woken)
return { 'ok', out }
