-- cancel: ARGV[3] = job id. Pending jobs end cancelled now; leased (running) ones are flagged
-- (faena.core.lifecycle.cancel).
-- Reply (JSON): ["missing"] | ["refused", record] | ["ok", record].
absorb()
local id = ARGV[3]
local r = rec(id)
if not r then return cjson.encode({ 'missing' }) end
local old = r[I.state]
if PENDING[old] then
  drop_pending(id, r)
  put(id, r, { I.state, 'cancelled', I.finished, NOW_S })
  redis.call('ZADD', K_DONE, NOW_S, id)
  move_state(id, r, old)
  if redis.call('HEXISTS', jkey(id), 'run') == 1 then
    local woken = {}
    hand_off(id, woken)
    wake(woken)
  end
  flush()
elseif LEASED[old] then
  put(id, r, { I.cancel, '1' })
else
  return cjson.encode({ 'refused', r })
end
return cjson.encode({ 'ok', r })
