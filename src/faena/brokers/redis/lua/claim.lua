-- claim: ARGV[3..] = worker, limit, lease deadline, n, n queue names.
-- Reaps expired leases, then admits runnable jobs. Reply (JSON): [claimed, reaped] records and
-- 1 if saturated else 0.
absorb()
local reply = claim_from(3)
flush()
return cjson.encode(reply)
