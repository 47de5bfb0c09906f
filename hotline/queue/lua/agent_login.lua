-- ARGV: agent_id, name, extension, sip_uri ("" for none), now_ms. Returns the agent as JSON.
-- Logging in an agent already logged in refreshes his contact details and keeps his state.
local agent = get_json(K_AGENTS, ARGV[1])
local now = tonumber(ARGV[5])
if agent == nil then
  agent = { agent_id = ARGV[1], state = 'logged_out' }
end
agent.name = ARGV[2]
agent.extension = ARGV[3]
agent.sip_uri = ARGV[4]
if agent.state == 'logged_out' then
  make_available(agent, now, now)
else
  put_json(K_AGENTS, agent.agent_id, agent)
end
return cjson.encode(agent)
