-- finish_and_claim: ARGV[3] = n outcomes (11 arguments each), then the claim arguments
-- (worker, limit, lease deadline, n, queues). Reply (JSON): [1/0 per outcome, claimed, reaped,
-- 1 if saturated else 0].
absorb()
local n = tonumber(ARGV[3])
local done = finish_from(3)
local reply = claim_from(4 + n * 11)
flush()
return cjson.encode({ done, reply[1], reply[2], reply[3] })
