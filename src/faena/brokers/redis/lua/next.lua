-- next: ARGV[3..] = queue names. Reply: the earliest run_at of their pending jobs, or false.
absorb()
local first = nil
for i = 3, #ARGV do
  local head = redis.call('ZRANGE', pend_key(ARGV[i]), 0, 0, 'WITHSCORES')
  if head[2] and (not first or tonumber(head[2]) < tonumber(first)) then first = head[2] end
end
return first or false
