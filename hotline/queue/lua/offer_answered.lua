-- ARGV: offer_id, now_ms. The agent answered: he is ON_CALL, the entry leaves the queue.
-- Returns 0 (and changes nothing) for an unknown, expired or already answered offer.
local now = tonumber(ARGV[2])
end_wrap_ups(now)
local offer = get_json(K_OFFERS, ARGV[1])
if offer == nil then
  return 0
end
local agent = get_json(K_AGENTS, offer.agent_id)
if not holds(agent, offer) then
  -- Never written by these scripts; put the call back rather than lose it.
  fail_offer(offer, now, 'agent-lost', false)
  return 0
end
drop_offer(offer)
-- A ring_all group: the first to answer takes the call; every other agent of the group gets
-- back the state he had before it (he keeps his turn), and the worker cancels his leg.
local entry = get_json(K_CALLS, offer.call_id)
if entry and entry.group then
  for _, offer_id in ipairs(entry.group) do
    local other = offer_id ~= offer.offer_id and get_json(K_OFFERS, offer_id)
    if other then
      drop_offer(other)
      local them = get_json(K_AGENTS, other.agent_id)
      if holds(them, other) then
        move(them, 'offer_withdrawn', 'available', them.prev_since_ms or them.idle_since_ms, 'system', ANSWERED_ELSEWHERE)
      end
    end
  end
end
redis.call('HDEL', K_CALLS, offer.call_id)
leave_lines(offer.call_id)
agent.call_id = offer.call_id
agent.call_queue = offer.queue -- his wrap-up after it is this queue's
agent.calls_answered = (agent.calls_answered or 0) + 1
move(agent, 'answered', 'on_call', now, 'agent', '')
redis.call('HSET', K_ONCALL, offer.call_id, agent.agent_id)
return 1
