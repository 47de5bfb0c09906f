-- ARGV: call_id, now_ms, lost ("1": the system lost the call). The agent who had this call goes
-- to wrap-up (the wrap-up of the call's queue; 0: available, idle since now) and the call's handle time joins the
-- moving average; a lost call makes him available at once and is not averaged. Either way the
-- call's talk time (answered to now) adds to his talk_ms (least_talk_time strategy).
-- Returns 1 if an agent had the call, else 0 (a repeated or unknown call changes nothing).
local now = tonumber(ARGV[2])
end_wrap_ups(now)
local agent_id = redis.call('HGET', K_ONCALL, ARGV[1])
if not agent_id then
  return 0
end
redis.call('HDEL', K_ONCALL, ARGV[1])
local agent = get_json(K_AGENTS, agent_id)
if agent and agent.state == 'on_call' and agent.call_id == ARGV[1] then
  end_call(agent, now, ARGV[3] == '1', '')
end
return 1
