-- ARGV: call_id. Removes a waiting or offered entry; returns 1 if it was there, else 0.
-- A reserved agent gets his earlier state back (same since and idle-since): the call he was
-- offered vanished, so he keeps his turn among idle agents.
-- A callback entry stays (returns 0): its caller hung up on purpose, and the worker that had
-- the call (ending, stopping or declared dead) no longer owns it.
local call_id = ARGV[1]
local entry = get_json(K_CALLS, call_id)
if entry ~= nil and entry.callback then
  return 0
end
leave_lines(call_id)
if entry == nil then
  return 0
end
redis.call('HDEL', K_CALLS, call_id)
withdraw_offer(entry, ABANDONED)
return 1
