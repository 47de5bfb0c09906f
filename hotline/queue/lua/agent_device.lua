-- ARGV: agent_id, device ("registered", "unreachable" or "" for unknown), now_ms. The agent's
-- softphone as the control plane last found it (Kamailio's registrar). Not a state of the agent
-- machine: an unreachable AVAILABLE agent stays available but dispatch passes him over (and the
-- watchdog does not count him), so he is offered calls again as soon as his phone registers.
-- Returns the agent as JSON (an agent never seen: nothing stored, logged out).
local now = tonumber(ARGV[3])
end_wrap_ups(now)
local agent = get_json(K_AGENTS, ARGV[1])
if agent == nil then
  return cjson.encode({ agent_id = ARGV[1], state = 'logged_out', since_ms = 0, reason = '' })
end
if (agent.device or '') ~= ARGV[2] then
  agent.device = ARGV[2] ~= '' and ARGV[2] or nil
  agent.device_since_ms = now
  put_json(K_AGENTS, agent.agent_id, agent)
end
return cjson.encode(agent)
