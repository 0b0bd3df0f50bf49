-- note_run: ARGV[3] = a run id, ARGV[4] = the finished_at of its end being reported (as
-- codec.num writes it). Sets the run's 'noted' field to it unless it holds it already.
-- Reply: 1 for the first caller of that end, 0 otherwise or for a run not held.
local key = run_key(ARGV[3])
if redis.call('EXISTS', key) == 0 then return 0 end
if redis.call('HGET', key, 'noted') == ARGV[4] then return 0 end
redis.call('HSET', key, 'noted', ARGV[4])
return 1
