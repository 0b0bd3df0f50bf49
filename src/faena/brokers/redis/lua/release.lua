-- release: (id, attempt) pairs from ARGV[3]. The attempt is given back and the job is
-- runnable at once, keeping its run_at and its place. Reply: 1/0 per lease.
absorb()
local out, woken = {}, {}
for a = 3, #ARGV, 2 do
  local id = ARGV[a]
  local r = rec(id)
  if not r or r[I.state] ~= 'running' or tonumber(r[I.attempt]) ~= tonumber(ARGV[a + 1]) then
    out[#out + 1] = 0
  elseif not sound(r) then  -- damaged while it ran: dead by itself, not runnable again
    end_lease(id, r)
    bury(id, r, unreadable(r))
    out[#out + 1] = 0
  else
    end_lease(id, r)
    add_attempt(id, r[I.attempt], r[I.worker], r[I.started], 'released')
    local tries = math.max(tonumber(r[I.tries]) - 1, 0)
    put(id, r, { I.state, 'queued', I.tries, tostring(tries), I.lease, '', I.worker, '' })
    make_pending(id, r)
    move_state(id, r, 'running', true)
    woken[r[I.queue]] = true
    out[#out + 1] = 1
  end
end
flush()
wake(woken)
return out
