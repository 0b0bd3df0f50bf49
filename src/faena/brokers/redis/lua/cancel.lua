-- cancel: ARGV[3] = job id. Pending jobs end cancelled now; running ones are flagged.
-- Reply: {'missing'} | {'refused', record} | {'ok', record}.
local id = ARGV[3]
local r = rec(id)
if not r then return { 'missing' } end
local old = r[I.state]
if PENDING[old] then
  drop_pending(id, r)
  put(id, r, { 'state', 'cancelled', 'finished', NOW_S })
  set_done(id)
  move_state(id, r, old)
elseif old == 'running' then
  put(id, r, { 'cancel', '1' })
else
  return { 'refused', r }
end
return { 'ok', r }
