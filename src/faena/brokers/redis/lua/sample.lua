-- sample: ARGV[3..8] = since, until, offset, count, queue ('' = any), want.
-- job_stats' run and wait sample, one chunk of it: the ids of the done index finished in
-- [since, until], newest first, `count` of them from `offset`; of those that ran
-- (STATES_RAN) in the queue asked for, run_at, started and finished ('' where absent),
-- stopping once `want` jobs are found. The caller asks in chunks, so one call never holds
-- Redis for long, and only three numbers of each job that ran leave Redis, in one string.
-- Reply: {ids looked at, 'run_at,started,finished,run_at,...'}.
local RAN = STATES_RAN
local queue, want = ARGV[7], tonumber(ARGV[8])
local out, looked = {}, 0
local ids = redis.call('ZREVRANGEBYSCORE', K_DONE, ARGV[4], ARGV[3], 'LIMIT', ARGV[5], ARGV[6])
for _, id in ipairs(ids) do
  if #out >= 3 * want then break end
  looked = looked + 1
  local v = redis.call('HMGET', jkey(id), 'state', 'queue', 'run_at', 'started', 'finished')
  if v[1] and RAN[v[1]] and v[4] and (queue == '' or v[2] == queue) then
    out[#out + 1] = v[3] or ''
    out[#out + 1] = v[4]
    out[#out + 1] = v[5] or ''
  end
end
return { looked, table.concat(out, ',') }
