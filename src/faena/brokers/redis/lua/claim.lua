-- claim: ARGV[3..] = worker, limit, lease deadline, n, n queue names.
-- Reaps expired leases, then admits runnable jobs. Reply: {claimed records, reaped records}.
local reply = claim_from(3)
return reply
