-- ARGV: agent_id, request ("pause", "resume" or "wrap_up_done"), reason, now_ms, by.
-- An agent's own (or a supervisor's) request. Returns the agent as JSON, or {"error":
-- "illegal-transition", ...} when his state has no transition for it (nothing changes then).
-- A request already satisfied (resume while available, the same pause) changes nothing.
local request, reason, now, by = ARGV[2], ARGV[3], tonumber(ARGV[4]), ARGV[5]
end_wrap_ups(now)
local agent = get_json(K_AGENTS, ARGV[1])
local state = agent and agent.state or 'logged_out'
if agent == nil or not allowed(state, request) then
  return cjson.encode({ error = 'illegal-transition', agent_id = ARGV[1], state = state })
end
if request == 'pause' then
  if not (state == 'paused' and agent.reason == reason) then
    move(agent, 'pause', 'paused', now, by, reason)
  end
elseif request == 'resume' then
  if state ~= 'available' then
    make_available(agent, 'resume', now, by, '')
  end
elseif request == 'wrap_up_done' then
  if state == 'wrap_up' then
    make_available(agent, 'wrap_up_done', now, by, '')
  end
else
  return redis.error_reply('unknown agent request ' .. request)
end
return cjson.encode(agent)
