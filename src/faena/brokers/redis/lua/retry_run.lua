-- retry_run: ARGV[3] = n, then per step to change: job id, the state it was planned from,
-- and 'run' (queued now) or 'wait' (waits for its upstreams). The plan is
-- core.dependencies.plan_retry, made by the caller from the run as read; if a step's state
-- changed since, nothing is written and the reply is ["changed"] (the caller reads again).
-- Reply (JSON): ["ok"] | ["changed"].
absorb()
local n = tonumber(ARGV[3])
for i = 0, n - 1 do
  local a = 4 + i * 3
  if redis.call('HGET', jkey(ARGV[a]), 'state') ~= ARGV[a + 1] then
    return cjson.encode({ 'changed' })
  end
end
local woken = {}
for i = 0, n - 1 do
  local a = 4 + i * 3
  local id = ARGV[a]
  local r = rec(id)
  local old = r[I.state]
  local state, run_at = 'queued', NOW_S
  if ARGV[a + 2] == 'wait' then state, run_at = 'scheduled', BLOCKED_S end
  redis.call('ZREM', K_DONE, id)
  hand_back(id)
  local s = redis.call('HMGET', jkey(id), 'kw0', 'res', 'ups')
  local kwargs = s[1]
  -- runs now: with its upstreams' results, as its release adds them
  if state == 'queued' and s[2] == '1' then kwargs = with_results(s[1], s[3]) end
  put(id, r, { I.state, state, I.tries, '0', I.run_at, run_at, I.finished, '', I.result, '',
               I.cancel, false, I.lease, '', I.worker, '', I.etype, '', I.emsg, '',
               I.etb, '', I.kwargs, kwargs })
  make_pending(id, r)
  move_state(id, r, old)
  woken[r[I.queue]] = true
end
flush()
wake(woken)
return cjson.encode({ 'ok' })
