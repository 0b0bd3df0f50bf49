-- retry: ARGV[3] = job id. A RETRYABLE (dead, cancelled) job runs again with a fresh budget
-- (faena.core.lifecycle.check_retry, manual_retry).
-- Reply (JSON): ["missing"] | ["refused", record] | ["taken", record, holder id] |
-- ["ok", record].
absorb()
local id = ARGV[3]
local r = rec(id)
if not r then return cjson.encode({ 'missing' }) end
local old = r[I.state]
if not RETRYABLE[old] then return cjson.encode({ 'refused', r }) end
local key = r[I.ikey]
if key then
  local hid = redis.call('HGET', K_IDEM, key)
  if hid and hid ~= id then
    local state = redis.call('HGET', jkey(hid), 'state')
    if state and HOLDS_KEY[state] then return cjson.encode({ 'taken', r, hid }) end
  end
  redis.call('HSET', K_IDEM, key, id)
end
redis.call('ZREM', K_DONE, id)
if redis.call('HEXISTS', jkey(id), 'run') == 1 then hand_back(id) end -- a pipeline step
put(id, r, { I.state, 'queued', I.tries, '0', I.run_at, NOW_S, I.finished, '', I.result, '',
             I.cancel, false, I.lease, '', I.worker, '' })
make_pending(id, r)
move_state(id, r, old)
flush()
wake({ [r[I.queue]] = true })
return cjson.encode({ 'ok', r })
