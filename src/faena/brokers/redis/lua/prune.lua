-- prune: ARGV[3] = older_than, ARGV[4] = most jobs to delete in this call.
-- Deletes terminal jobs finished before older_than, and job_stats' counters of the minutes
-- before it. Reply: how many jobs were deleted.
absorb()
local K_MINUTES = P .. ':minutes'
for _, m in ipairs(redis.call('ZRANGEBYSCORE', K_MINUTES, '-inf', '(' .. ARGV[3])) do
  redis.call('DEL', P .. ':m:' .. m)
end
redis.call('ZREMRANGEBYSCORE', K_MINUTES, '-inf', '(' .. ARGV[3])
local ids = redis.call('ZRANGEBYSCORE', K_DONE, '-inf', '(' .. ARGV[3], 'LIMIT', 0,
                       tonumber(ARGV[4]))
for _, id in ipairs(ids) do
  local v = redis.call('HMGET', jkey(id), 'state', 'queue', 'ikey')
  if v[1] then
    redis.call('HINCRBY', K_COUNTS, v[2] .. '|' .. v[1], -1)
    if INDEXED[v[1]] then redis.call('ZREM', st_key(v[1]), id) end
    if v[3] and redis.call('HGET', K_IDEM, v[3]) == id then redis.call('HDEL', K_IDEM, v[3]) end
  end
  redis.call('DEL', jkey(id))
  redis.call('ZREM', K_ALL, id)
  redis.call('ZREM', K_DONE, id)
end
return #ids
