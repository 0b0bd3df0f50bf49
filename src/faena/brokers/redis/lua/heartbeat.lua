-- heartbeat: ARGV[3] = lease deadline, then (id, attempt) pairs.
-- Renews each lease still held; reply: {lost ids, ids whose cancellation was requested}.
local deadline = ARGV[3]
local lost, cancel = {}, {}
for a = 4, #ARGV, 2 do
  local id = ARGV[a]
  local v = redis.call('HMGET', jkey(id), 'state', 'attempt', 'cancel')
  if v[1] ~= 'running' or tonumber(v[2]) ~= tonumber(ARGV[a + 1]) then
    lost[#lost + 1] = id
  else
    redis.call('HSET', jkey(id), 'lease', deadline)
    redis.call('ZADD', K_RUNNING, deadline, id)
    if v[3] == '1' then cancel[#cancel + 1] = id end
  end
end
return { lost, cancel }
