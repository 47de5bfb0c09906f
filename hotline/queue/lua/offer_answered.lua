-- ARGV: offer_id, now_ms. The agent answered: he is ON_CALL, the entry leaves the queue.
-- Returns 0 (and changes nothing) for an unknown, expired or already answered offer.
local offer = get_json(K_OFFERS, ARGV[1])
if offer == nil then
  return 0
end
local agent = get_json(K_AGENTS, offer.agent_id)
if not holds(agent, offer) then
  -- Never written by these scripts; put the call back rather than lose it.
  fail_offer(offer, tonumber(ARGV[2]), 'agent-lost')
  return 0
end
drop_offer(offer)
redis.call('HDEL', K_CALLS, offer.call_id)
redis.call('ZREM', K_WAITING, offer.call_id)
agent.state = 'on_call'
agent.since_ms = tonumber(ARGV[2])
agent.offer_id = nil
agent.prev_since_ms = nil
agent.call_id = offer.call_id
put_json(K_AGENTS, agent.agent_id, agent)
redis.call('ZREM', K_AVAILABLE, agent.agent_id)
redis.call('HSET', K_ONCALL, offer.call_id, agent.agent_id)
return 1
