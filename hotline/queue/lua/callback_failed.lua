-- ARGV: offer_id, now_ms, reason, retry_at_ms, max_attempts. The agent was on the line but the
-- caller we called back did not answer (busy, no answer, unreachable): the agent is available
-- again (not his fault), and the entry goes back to its place, not offered again before
-- retry_at_ms; after max_attempts failed attempts it leaves the queue for good.
-- Returns the number of failed attempts so far, 0 when that was the last one (entry removed),
-- -1 for an offer no longer live (no change).
local now = tonumber(ARGV[2])
end_wrap_ups(now)
local offer = get_json(K_OFFERS, ARGV[1])
if offer == nil then
  return -1
end
drop_offer(offer)
local agent = get_json(K_AGENTS, offer.agent_id)
if holds(agent, offer) then
  make_available(agent, 'offer_failed', now, 'system', ARGV[3])
end
local entry = get_json(K_CALLS, offer.call_id)
if entry == nil then
  return -1
end
entry.callback_attempts = (entry.callback_attempts or 0) + 1
if entry.callback_attempts >= tonumber(ARGV[5]) then
  redis.call('HDEL', K_CALLS, offer.call_id)
  leave_lines(offer.call_id)
  return 0
end
entry.not_before_ms = tonumber(ARGV[4])
put_json(K_CALLS, offer.call_id, entry)
requeue(offer.call_id, ARGV[3])
return entry.callback_attempts
