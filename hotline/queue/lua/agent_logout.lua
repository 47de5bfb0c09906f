-- ARGV: agent_id, now_ms. Returns the agent as JSON, or {"error": "on-call", ...} when the
-- agent is on a call (nothing changes). A reserved agent's offered call goes back in place.
local agent = get_json(K_AGENTS, ARGV[1])
if agent == nil then
  return cjson.encode({ agent_id = ARGV[1], state = 'logged_out', since_ms = 0 })
end
if agent.state == 'logged_out' then
  return cjson.encode(agent)
end
if agent.state == 'on_call' then
  return cjson.encode({ error = 'on-call', agent_id = agent.agent_id, call_id = agent.call_id })
end
if agent.state == 'reserved' and agent.offer_id then
  local offer = get_json(K_OFFERS, agent.offer_id)
  if offer then
    drop_offer(offer)
    requeue(offer.call_id, 'agent-logged-out')
  end
end
redis.call('ZREM', K_AVAILABLE, agent.agent_id)
agent.state = 'logged_out'
agent.since_ms = tonumber(ARGV[2])
agent.call_id = nil
agent.offer_id = nil
agent.prev_since_ms = nil
put_json(K_AGENTS, agent.agent_id, agent)
return cjson.encode(agent)
