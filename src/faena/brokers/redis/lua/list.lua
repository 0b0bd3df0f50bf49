-- list: ARGV[3..7] = state, queue, task ('' = any), limit, offset. Newest first.
-- Failed, dead and cancelled jobs have an index each; running jobs come from the running set;
-- other states are found by walking every job from the newest. Reply (JSON): records.
absorb()
local state, queue, task = ARGV[3], ARGV[4], ARGV[5]
local limit, skip = tonumber(ARGV[6]), tonumber(ARGV[7])
local out = {}
if limit <= 0 then return cjson.encode(out) end

local function wanted(id)
  local v = redis.call('HMGET', jkey(id), 'state', 'queue', 'task')
  return v[1] and (state == '' or v[1] == state) and (queue == '' or v[2] == queue)
    and (task == '' or v[3] == task)
end

local function walk(ids)
  for _, id in ipairs(ids) do
    if #out >= limit then return end
    if wanted(id) then
      if skip > 0 then skip = skip - 1 else out[#out + 1] = rec(id) end
    end
  end
end

if state == 'running' then
  local ids = redis.call('ZRANGE', K_RUNNING, 0, -1)
  local seqs = {}
  for _, id in ipairs(ids) do seqs[id] = seq_of(redis.call('HGET', jkey(id), 'rank') or '') end
  table.sort(ids, function(x, y) return (seqs[x] or 0) > (seqs[y] or 0) end)
  walk(ids)
else
  local index = K_ALL
  if INDEXED[state] then index = st_key(state) end
  local start = 0
  while #out < limit do
    local ids = redis.call('ZREVRANGE', index, start, start + 499)
    if #ids == 0 then break end
    walk(ids)
    start = start + 500
  end
end
return cjson.encode(out)
