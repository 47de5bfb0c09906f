-- ARGV: call_id, from_agent, to_agent, now_ms, released ("1": from_agent was released to
-- wrap-up already, his leg having ended while the transfer rang; the call goes on without an
-- agent). The agent the call was transferred to answered: he goes from the transfer pause to
-- ON_CALL with the call exactly as if he had answered an offer of it (calls_answered, the
-- call's queue, oncall), and from_agent, if he still has the call, goes to wrap-up with the
-- reason TRANSFERRED .. to_agent (his talk time and handle time counted).
-- Returns 1 when to_agent has the call (now, or already: a repeat changes nothing); 0 when he
-- is not in the transfer pause (nothing changes); -1 when the call is over or someone else has
-- it (oncall names neither from_agent nor, released, nobody): to_agent is resumed.
local call_id, from_id, to_id, now, released = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4]), ARGV[5] == '1'
end_wrap_ups(now)
local to = get_json(K_AGENTS, to_id)
local holder = redis.call('HGET', K_ONCALL, call_id)
if to and holder == to_id and to.state == 'on_call' and to.call_id == call_id then
  return 1
end
if not (to and to.state == 'paused' and to.reason == TRANSFER_PAUSE) then
  return 0
end
local from = from_id ~= '' and get_json(K_AGENTS, from_id) or nil
local queue = nil
if released and not holder then
  if from and from.call_id == call_id then
    queue = from.call_queue
  end
elseif not released and holder and holder == from_id then
  queue = from and from.call_queue
  if from and from.state == 'on_call' and from.call_id == call_id then
    end_call(from, now, false, TRANSFERRED .. to_id)
  end
else
  make_available(to, 'resume', now, 'system', '')
  return -1
end
to.call_id = call_id
to.call_queue = queue
to.calls_answered = (to.calls_answered or 0) + 1
move(to, 'transfer_taken', 'on_call', now, 'agent', '')
redis.call('HSET', K_ONCALL, call_id, to_id)
return 1
