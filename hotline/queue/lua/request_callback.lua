-- ARGV: call_id, number, now_ms. The caller asked to be called back and hangs up: the entry
-- keeps its arrival score (its place in line) and becomes a callback entry, owned by no worker
-- (any live worker dials it when its turn comes). An offer in flight is withdrawn (the agent
-- gets his earlier state back, as on abandon). Returns 1, or 0 if the call is not queued.
local call_id = ARGV[1]
local now = tonumber(ARGV[3])
end_wrap_ups(now)
local entry = get_json(K_CALLS, call_id)
if entry == nil then
  return 0
end
withdraw_offer(entry, CALLBACK_REQUESTED)
entry.state = 'waiting'
entry.offer_id = nil
entry.agent_id = nil
entry.callback = true
entry.callback_number = ARGV[2]
entry.callback_since_ms = now
entry.callback_attempts = entry.callback_attempts or 0
entry.worker_id = ''
put_json(K_CALLS, call_id, entry)
line_up(entry)
return 1
