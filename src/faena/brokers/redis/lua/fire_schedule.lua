-- fire_schedule: ARGV[3] the schedule, ARGV[4] the tick, ARGV[5] '1' with jobs ('0': the
-- tick alone), ARGV[6] how many pools the jobs use, then those pools, then the arguments of
-- enqueue (enqueue.lua, which runs after this in the same function). The compare-and-set:
-- the tick is recorded in {p}:schedules (name -> 'tick fired_at') only if it is newer than
-- the stored one, and only then are the jobs enqueued, all in this one atomic call. The
-- pools are checked before anything is written (enqueue's own check would come after the
-- tick is recorded). Reply: 'stale' (nothing written), 'armed' (the tick alone), the
-- unknown pool as enqueue replies it, or enqueue's reply.
local sched_key = P .. ':schedules'
local sched_tick = tonumber(ARGV[4])
local sched_stored = redis.call('HGET', sched_key, ARGV[3])
if sched_stored and tonumber(string.match(sched_stored, '^(%S+)')) >= sched_tick then
  return 'stale'
end
local sched_pools = tonumber(ARGV[6])
for k = 7, 6 + sched_pools do
  if redis.call('HEXISTS', K_POOLS, ARGV[k]) == 0 then
    return cjson.encode({ 'unknown_pool', ARGV[k] })
  end
end
redis.call('HSET', sched_key, ARGV[3], ARGV[4] .. ' ' .. NOW_S)
if ARGV[5] == '0' then return 'armed' end
ARGV = { ARGV[1], ARGV[2], unpack(ARGV, 7 + sched_pools) }
