-- ARGV: agent_id, name, extension, sip_uri ("" for none), now_ms, by, skills (JSON object of
-- name -> level). Returns the agent as JSON. Logging in an agent already logged in refreshes his
-- contact details and skills and keeps his state; a new login counts his calls and talk from 0.
local now = tonumber(ARGV[5])
end_wrap_ups(now)
local agent = get_json(K_AGENTS, ARGV[1])
if agent == nil then
  agent = { agent_id = ARGV[1], state = 'logged_out', since_ms = 0, reason = '' }
end
agent.name = ARGV[2]
agent.extension = ARGV[3]
agent.sip_uri = ARGV[4]
agent.skills = cjson.decode(ARGV[7])
if agent.state == 'logged_out' then
  agent.calls_answered = 0
  agent.talk_ms = 0
  make_available(agent, 'login', now, ARGV[6], '')
else
  put_json(K_AGENTS, agent.agent_id, agent)
end
return cjson.encode(agent)
