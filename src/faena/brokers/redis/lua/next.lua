-- next: ARGV[3..] = queue names. Reply: the earliest run_at of the pending jobs of those that
-- are not paused, or false.
absorb()
local first = nil
for _, q in ipairs(unpaused(ARGV, 3, #ARGV)) do
  local head = redis.call('ZRANGE', pend_key(q), 0, 0, 'WITHSCORES')
  if head[2] and (not first or tonumber(head[2]) < tonumber(first)) then first = head[2] end
end
return first or false
