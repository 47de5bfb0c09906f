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
  agent.talk_ms = (agent.talk_ms or 0) + math.max(0, now - agent.since_ms)
  if ARGV[3] == '1' then
    make_available(agent, 'call_ended', now, 'system', CALL_LOST)
  else
    record_handle_time(math.max(0, now - agent.since_ms))
    local q = QUEUES[agent.call_queue or FIRST_QUEUE] or QUEUES[FIRST_QUEUE]
    if q.wrap_up_ms > 0 then
      agent.wrap_up_until_ms = now + q.wrap_up_ms
      move(agent, 'call_ended', 'wrap_up', now, 'system', '')
    else
      make_available(agent, 'call_ended', now, 'system', '')
    end
  end
end
return 1
