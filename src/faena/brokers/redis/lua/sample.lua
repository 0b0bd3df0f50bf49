-- sample: ARGV[3..7] = since, until, offset, count, queue ('' = any).
-- job_stats' run and wait sample, one chunk of it: of the ids of the done index finished in
-- [since, until], newest first, `count` from `offset`; of those that ran (STATES_RAN) in the
-- queue asked for, run_at, started and finished ('' where absent), flat. The caller asks in
-- chunks, so one call never holds Redis for long, and only the three numbers of each job
-- leave Redis (not a reply of five fields per job). Reply: {ids looked at, {values...}}.
local RAN = STATES_RAN
local queue = ARGV[7]
local out = {}
local ids = redis.call('ZREVRANGEBYSCORE', K_DONE, ARGV[4], ARGV[3], 'LIMIT', ARGV[5], ARGV[6])
for _, id in ipairs(ids) do
  local v = redis.call('HMGET', jkey(id), 'state', 'queue', 'run_at', 'started', 'finished')
  if v[1] and RAN[v[1]] and (queue == '' or v[2] == queue) then
    out[#out + 1] = v[3] or ''
    out[#out + 1] = v[4] or ''
    out[#out + 1] = v[5] or ''
  end
end
return { #ids, out }
