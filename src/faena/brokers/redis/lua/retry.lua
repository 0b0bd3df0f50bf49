-- retry: ARGV[3] = job id. A dead or cancelled job runs again with a fresh budget.
-- Reply: {'missing'} | {'refused', record} | {'taken', record, holder id} | {'ok', record}.
local id = ARGV[3]
local r = rec(id)
if not r then return { 'missing' } end
local old = r[I.state]
if old ~= 'dead' and old ~= 'cancelled' then return { 'refused', r } end
local key = r[I.ikey]
if key then
  local hid = redis.call('HGET', K_IDEM, key)
  if hid and hid ~= id then
    local state = redis.call('HGET', jkey(hid), 'state')
    if state and HOLDS_KEY[state] then return { 'taken', r, hid } end
  end
  redis.call('HSET', K_IDEM, key, id)
end
redis.call('ZREM', K_DONE, id)
put(id, r, { 'state', 'queued', 'tries', '0', 'run_at', NOW_S, 'finished', false,
             'result', false, 'cancel', false, 'lease', false, 'worker', false })
make_pending(id, r)
move_state(id, r, old)
wake({ [r[I.queue]] = true })
return { 'ok', r }
