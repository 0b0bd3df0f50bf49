-- stats: pools and queues as of now.
-- Reply: {{pool, size, used}...}, {{queue, waiting, scheduled, running, oldest run_at}...}.
-- Used slots count live leases only: an expired one that is not reaped yet does not count.
absorb()
local used = {}
for _, id in ipairs(redis.call('ZRANGEBYSCORE', K_RUNNING, '(' .. NOW_S, '+inf')) do
  local v = redis.call('HMGET', jkey(id), 'pool', 'slots')
  if v[1] then used[v[1]] = (used[v[1]] or 0) + (tonumber(v[2]) or 0) end
end
local pools = {}
local flat = redis.call('HGETALL', K_POOLS)
for i = 1, #flat, 2 do
  pools[#pools + 1] = { flat[i], flat[i + 1], tostring(used[flat[i]] or 0) }
end
local queues, running = {}, {}
flat = redis.call('HGETALL', K_COUNTS)
for i = 1, #flat, 2 do
  if tonumber(flat[i + 1]) > 0 then
    local bar = string.find(flat[i], '|', 1, true)
    local q, state = string.sub(flat[i], 1, bar - 1), string.sub(flat[i], bar + 1)
    queues[q] = true
    if state == 'running' then running[q] = flat[i + 1] end
  end
end
local rows = {}
for q in pairs(queues) do
  local key = pend_key(q)
  local first = redis.call('ZRANGEBYSCORE', key, '-inf', NOW_S, 'WITHSCORES', 'LIMIT', 0, 1)
  rows[#rows + 1] = { q, redis.call('ZCOUNT', key, '-inf', NOW_S),
                      redis.call('ZCOUNT', key, '(' .. NOW_S, '+inf'), running[q] or '0',
                      first[2] or '' }
end
return { pools, rows }
