-- list: ARGV[3..7] = state, queue, task ('' = any), limit, offset. Newest first.
local state, queue, task = ARGV[3], ARGV[4], ARGV[5]
local limit, offset = tonumber(ARGV[6]), tonumber(ARGV[7])
local index = K_ALL
if state ~= '' then index = st_key(state) end
local out = {}
if limit <= 0 then return out end
if queue == '' and task == '' then
  for _, id in ipairs(redis.call('ZREVRANGE', index, offset, offset + limit - 1)) do
    out[#out + 1] = rec(id)
  end
  return out
end
local start, chunk, skip = 0, 500, offset
while #out < limit do
  local ids = redis.call('ZREVRANGE', index, start, start + chunk - 1)
  if #ids == 0 then break end
  for _, id in ipairs(ids) do
    local v = redis.call('HMGET', jkey(id), 'queue', 'task')
    if (queue == '' or v[1] == queue) and (task == '' or v[2] == task) then
      if skip > 0 then
        skip = skip - 1
      elseif #out < limit then
        out[#out + 1] = rec(id)
      end
    end
  end
  start = start + chunk
end
return out
