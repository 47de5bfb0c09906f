-- ARGV: agent_id, name, extension, sip_uri ("" for none), now_ms, by. Returns the agent as JSON.
-- Logging in an agent already logged in refreshes his contact details and keeps his state.
local now = tonumber(ARGV[5])
end_wrap_ups(now)
local agent = get_json(K_AGENTS, ARGV[1])
if agent == nil then
  agent = { agent_id = ARGV[1], state = 'logged_out', since_ms = 0, reason = '' }
end
agent.name = ARGV[2]
agent.extension = ARGV[3]
agent.sip_uri = ARGV[4]
if agent.state == 'logged_out' then
  make_available(agent, 'login', now, ARGV[6], '')
else
  put_json(K_AGENTS, agent.agent_id, agent)
end
return cjson.encode(agent)
