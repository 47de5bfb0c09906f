-- ARGV: call_id, now_ms. The agent who had this call becomes AVAILABLE, idle since now.
-- Returns 1 if an agent had the call, else 0 (a repeated or unknown call changes nothing).
local agent_id = redis.call('HGET', K_ONCALL, ARGV[1])
if not agent_id then
  return 0
end
redis.call('HDEL', K_ONCALL, ARGV[1])
local agent = get_json(K_AGENTS, agent_id)
if agent and agent.state == 'on_call' and agent.call_id == ARGV[1] then
  local now = tonumber(ARGV[2])
  make_available(agent, now, now)
end
return 1
