-- keys: ARGV[3] = 'ids', ARGV[4..] = job ids. Reply: the enqueue sequence of each ('' for a
-- job not stored). Or ARGV[3] = 'seq', ARGV[4] = a sequence. Reply: the id of the job that
-- holds it, or false. Jobs enqueued alone take their sequences first (absorb).
absorb()
if ARGV[3] == 'seq' then
  local found = redis.call('ZRANGE', K_ALL, ARGV[4], ARGV[4], 'BYSCORE', 'LIMIT', 0, 1)
  return found[1] or false
end
local out = {}
for i = 4, #ARGV do
  local score = redis.call('ZSCORE', K_ALL, ARGV[i])
  out[#out + 1] = score or ''
end
return out
