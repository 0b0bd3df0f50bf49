-- Pipeline runs (faena.core.runs, rules in faena.core.dependencies), appended to lib.lua by
-- the loader. A step is a job whose hash also holds: run (its run id), sname (step name),
-- rule, ups / downs (upstream / downstream job ids, comma-joined), upn (upstream names), res
-- ('1': takes its upstreams' results), kw0 (its keyword arguments as declared), pend / fail
-- (its upstreams not ended / ended dead or cancelled: see decide). A step that
-- waits is 'scheduled' with run_at BLOCKED (core.dependencies.BLOCKED_AT), in its pend and
-- delayed sets at that score: no claim promotes it. A run is the hash P:run:<id> (pipeline,
-- key, params, created, jobs: its step job ids in topological order); P:runkeys maps run
-- keys to run ids (kept as long as the run), P:runs and P:runs:<pipeline> order runs.
local BLOCKED = 253402300799
local BLOCKED_S = '253402300799.0'
local FAILED_UP = STATES_RETRYABLE -- dead, cancelled: what counts as a failed upstream


local function run_key(id) return P .. ':run:' .. id end

-- core.dependencies.decide on the step's counts of upstreams not ended (pend) and ended
-- dead or cancelled (fail), kept true at every change of an upstream into or out of the
-- terminal states (hand_off, hand_back): 'release', 'skip' or 'wait'
local function decide(rule, pend, fail)
  if rule == 'all_success' then
    if fail > 0 then return 'skip' end
    if pend == 0 then return 'release' end
  elseif rule == 'all_done' then
    if pend == 0 then return 'release' end
  elseif rule == 'one_failed' then
    if fail > 0 then return 'release' end
    if pend == 0 then return 'skip' end
  end
  return 'wait'
end

-- core.dependencies.with_results(kw0, upstream_results(...))
local function with_results(kw0, ups)
  local parts = {}
  for u in string.gmatch(ups or '', '[^,]+') do
    local v = redis.call('HMGET', jkey(u), 'sname', 'result')
    local result = v[2]
    if not result or result == '' then result = 'null' end
    parts[#parts + 1] = '"' .. v[1] .. '":' .. result
  end
  local head = '{"upstream":{' .. table.concat(parts, ',') .. '}'
  if kw0 == '{}' then return head .. '}' end
  return head .. ',' .. string.sub(kw0, 2)
end

-- The step `first` has just ended: release or skip each waiting downstream, and theirs in
-- turn (a skip ends a step). `woken` gathers the queues to wake.
hand_off = function(first, woken)
  local todo = { first }
  while #todo > 0 do
    local up = redis.call('HMGET', jkey(table.remove(todo)), 'downs', 'state')
    local failed = 0
    if FAILED_UP[up[2]] then failed = 1 end
    for d in string.gmatch(up[1] or '', '[^,]+') do
      local pend = redis.call('HINCRBY', jkey(d), 'pend', -1)
      local fail = redis.call('HINCRBY', jkey(d), 'fail', failed)
      local v = redis.call('HMGET', jkey(d), 'state', 'run_at', 'rule', 'ups', 'res', 'kw0')
      if v[1] == 'scheduled' and tonumber(v[2]) and tonumber(v[2]) >= BLOCKED then
        local decision = decide(v[3], pend, fail)
        if decision == 'release' then
          local r = rec(d)
          local ch = { I.run_at, NOW_S }
          if v[5] == '1' then ch[3], ch[4] = I.kwargs, with_results(v[6], v[4]) end
          put(d, r, ch)
          redis.call('ZADD', pend_key(r[I.queue]), NOW_S, d)
          redis.call('ZADD', delayed_key(r[I.queue]), NOW_S, d)
          woken[r[I.queue]] = true
        elseif decision == 'skip' then
          local r = rec(d)
          drop_pending(d, r)
          put(d, r, { I.state, 'cancelled', I.finished, NOW_S, I.etype, 'Skipped',
                      I.emsg, 'skipped: its trigger rule ' .. v[3] ..
                      ' can no longer be met by its upstreams', I.etb, '' })
          redis.call('ZADD', K_DONE, NOW_S, d)
          move_state(d, r, 'scheduled')
          todo[#todo + 1] = d
        end
      end
    end
  end
end

-- The step `id` (dead or cancelled) runs again: its downstreams wait for it anew.
local function hand_back(id)
  local downs = redis.call('HGET', jkey(id), 'downs')
  for d in string.gmatch(downs or '', '[^,]+') do
    redis.call('HINCRBY', jkey(d), 'pend', 1)
    redis.call('HINCRBY', jkey(d), 'fail', -1)
  end
end

-- A run as get_run reads it: [id, pipeline, key, params, created, steps], each step
-- [name, job id, upstream names, rule, res, state, error type, enq, run_at, started,
-- finished] ('' for a field without a value; state '' for a pruned job).
local function run_view(id)
  local v = redis.call('HMGET', run_key(id), 'pipeline', 'key', 'params', 'created', 'jobs')
  if not v[1] then return nil end
  local steps = {}
  for j in string.gmatch(v[5] or '', '[^,]+') do
    local s = redis.call('HMGET', jkey(j), 'sname', 'upn', 'rule', 'res', 'state', 'etype',
                         'enq', 'run_at', 'started', 'finished')
    for k = 1, 10 do if not s[k] then s[k] = '' end end
    steps[#steps + 1] = { s[1], j, s[2], s[3], s[4], s[5], s[6], s[7], s[8], s[9], s[10] }
  end
  return { id, v[1], v[2], v[3], v[4], steps }
end
