-- list: ARGV[3..9] = state, queue, task ('' = any), limit, offset, cursor, budget;
-- ARGV[10..12] optional (below).
-- Newest first. Failed, dead and cancelled jobs have an index each (by sequence); running
-- jobs come from the running set (as many as the workers run); other states are found by
-- walking every job from the newest. A walk looks at no more than `budget` jobs per call, so
-- a listing over many jobs never blocks Redis for long: it returns where it stopped
-- (`cursor`, a sequence; '' when the walk is done) and the matches still to skip, and the
-- caller calls again from there. Reply (JSON): {records, cursor, skip}.
absorb()
local state, queue, task = ARGV[3], ARGV[4], ARGV[5]
local limit, skip = tonumber(ARGV[6]), tonumber(ARGV[7])
local cursor, budget = ARGV[8], tonumber(ARGV[9])
local out = {}
if limit <= 0 then return cjson.encode({ records = out, cursor = '', skip = skip }) end

-- ARGV[10..12] (search_jobs; absent for list_jobs): enqueued at or after, enqueued before
-- ('' = any), and a text already folded to lower case ASCII, found in the args JSON, the
-- kwargs JSON or the error message (string.lower folds ASCII only, as faena.core.search does)
local since, before = tonumber(ARGV[10] or ''), tonumber(ARGV[11] or '')
local needle = ARGV[12] or ''

local function found_text(id)
  local t = redis.call('HMGET', jkey(id), 'args', 'kwargs', 'emsg')
  for i = 1, 3 do
    if t[i] and string.find(string.lower(t[i]), needle, 1, true) then return true end
  end
  return false
end

local function wanted(id)
  local v = redis.call('HMGET', jkey(id), 'state', 'queue', 'task', 'enq')
  if not (v[1] and (state == '' or v[1] == state) and (queue == '' or v[2] == queue)
    and (task == '' or v[3] == task)) then return false end
  if since and (tonumber(v[4]) or 0) < since then return false end
  if before and (tonumber(v[4]) or 0) >= before then return false end
  return needle == '' or found_text(id)
end

local function take(id)
  if skip > 0 then skip = skip - 1 else out[#out + 1] = rec(id) end
end

if state == 'running' then
  local ids = redis.call('ZRANGE', K_RUNNING, 0, -1)
  local seqs = {}
  for _, id in ipairs(ids) do seqs[id] = seq_of(redis.call('HGET', jkey(id), 'rank') or '') end
  table.sort(ids, function(x, y) return (seqs[x] or 0) > (seqs[y] or 0) end)
  -- a cursor (a keyset page, search_jobs) starts below that sequence; a page that stops for
  -- the limit says where it stopped
  local below, last = tonumber(cursor), 0
  for _, id in ipairs(ids) do
    if #out >= limit then
      return cjson.encode({ records = out, cursor = string.format('%d', last), skip = skip })
    end
    if (below == nil or (seqs[id] or 0) < below) and wanted(id) then
      take(id)
      last = seqs[id] or 0
    end
  end
  return cjson.encode({ records = out, cursor = '', skip = skip })
end

local index = K_ALL
if INDEXED[state] then index = st_key(state) end
local top = '+inf'
if cursor ~= '' then top = '(' .. cursor end
local seen = 0
while #out < limit and seen < budget do
  local page = redis.call('ZREVRANGEBYSCORE', index, top, '-inf', 'WITHSCORES', 'LIMIT', 0,
                          math.min(500, budget - seen))
  if #page == 0 then return cjson.encode({ records = out, cursor = '', skip = skip }) end
  for i = 1, #page, 2 do
    local id = page[i]
    seen = seen + 1
    top = '(' .. page[i + 1]
    if wanted(id) then
      take(id)
      if #out >= limit then break end
    end
  end
end
-- stopped for the limit or the budget: the caller goes on below the last job looked at
return cjson.encode({ records = out, cursor = string.sub(top, 2), skip = skip })
