-- setup: ARGV[3] = this faena's schema version, ARGV[4] = default pool, ARGV[5] = its size.
-- Reply: the stored schema version (written if the store was empty).
local stored = redis.call('HGET', K_META, 'schema')
if not stored then
  redis.call('HSET', K_META, 'schema', ARGV[3])
  stored = ARGV[3]
end
if tonumber(stored) <= tonumber(ARGV[3]) then
  redis.call('HSETNX', K_POOLS, ARGV[4], ARGV[5])
end
return stored
