-- runs: ARGV[3] = 'get' and a run id, or 'list', a pipeline ('' = all), offset, limit.
-- Reply (JSON): a run (see run_view) or false | an array of runs, newest first.
if ARGV[3] == 'get' then
  return cjson.encode({ run_view(ARGV[4]) or false })
end
local key = P .. ':runs'
if ARGV[4] ~= '' then key = key .. ':' .. ARGV[4] end
local lo = tonumber(ARGV[5])
local ids = redis.call('ZREVRANGE', key, lo, lo + tonumber(ARGV[6]) - 1)
local out = {}
for _, id in ipairs(ids) do
  local v = run_view(id)
  if v then out[#out + 1] = v end
end
if #out == 0 then return '[]' end
return cjson.encode(out)
