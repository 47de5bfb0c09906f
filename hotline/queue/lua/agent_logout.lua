-- ARGV: agent_id, now_ms, by, reason. Returns the agent as JSON, or {"error":
-- "illegal-transition", ...} when the agent may not log out now (on a call: nothing changes).
-- A reserved agent's offered call goes back in place.
local now = tonumber(ARGV[2])
end_wrap_ups(now)
local agent = get_json(K_AGENTS, ARGV[1])
if agent == nil then
  return cjson.encode({ agent_id = ARGV[1], state = 'logged_out', since_ms = 0, reason = '' })
end
if not allowed(agent.state, 'logout') then
  return cjson.encode({ error = 'illegal-transition', agent_id = agent.agent_id, state = agent.state,
    call_id = agent.call_id })
end
if agent.state == 'logged_out' then
  return cjson.encode(agent)
end
if agent.state == 'reserved' and agent.offer_id then
  local offer = get_json(K_OFFERS, agent.offer_id)
  if offer then
    release_offer(offer, AGENT_LOGGED_OUT)
  end
end
move(agent, 'logout', 'logged_out', now, ARGV[3], ARGV[4])
return cjson.encode(agent)
