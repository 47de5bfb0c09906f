-- Prepended to every ACD script, after the prelude acd.py generates (TRANSITIONS from
-- agent_state.py, the policy, QUEUES/QUEUE_ORDER/PRIORITIES, names of events and reasons).
-- Rules kept by every script:
--  * an entry (call) is in exactly one place: waiting (in the ZSET of its queue and priority,
--    state "waiting"), offered (state "offered", one offer and one RESERVED agent, or for a
--    ring_all queue a group of offers, entry.group, each with its own RESERVED agent), or
--    answered (only in oncall); an offered entry goes back to its place only when no offer of
--    its group is live any more, and the first to answer takes it (the others are released);
--  * an entry keeps its original arrival score, so a failed offer puts it back where it was and
--    a raised priority keeps its arrival order within the new priority;
--  * an agent holds at most one offer or call, is in the available ZSET iff AVAILABLE and in the
--    wrap-ups ZSET iff WRAP_UP; his state changes only through move(), which applies the table
--    of agent_state.py and publishes the change on the events stream in the same step;
--  * every script given now_ms first ends the wrap-ups due by then (time passing, in order of
--    deadline then agent id), so every process sees the same agent states at the same time.
-- KEYS, in the order of keys.AcdKeys.all():
local K_WAITING, K_CALLS, K_OFFERS, K_LEASES = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local K_AGENTS, K_AVAILABLE, K_ONCALL, K_SEQ = KEYS[5], KEYS[6], KEYS[7], KEYS[8]
local K_WRAP_UPS, K_STATS, K_EVENTS, K_LAST_OFFERED = KEYS[11], KEYS[12], KEYS[13], KEYS[14]

local function get_json(key, field)
  local raw = redis.call('HGET', key, field)
  if not raw then
    return nil
  end
  return cjson.decode(raw)
end

local function put_json(key, field, value)
  redis.call('HSET', key, field, cjson.encode(value))
end

-- --- queue entries ---------------------------------------------------------------------

-- The entry's queue: an entry written before there were several queues (no queue field), or
-- of a queue no longer configured, belongs to the first queue.
local function queue_of(entry)
  return QUEUES[entry.queue or FIRST_QUEUE] or QUEUES[FIRST_QUEUE]
end

local function band_of(entry)
  local bands = queue_of(entry).bands
  return bands[entry.priority or 0] or bands[0]
end

-- How many calls queue q holds: waiting (callbacks too) and offered.
local function queue_length(q)
  local n = 0
  for _, priority in ipairs(PRIORITIES) do
    n = n + redis.call('ZCARD', q.bands[priority])
  end
  local seen = {} -- a ring_all group's offers are one call
  for _, raw in ipairs(redis.call('HVALS', K_OFFERS)) do
    local offer = cjson.decode(raw)
    if (QUEUES[offer.queue or FIRST_QUEUE] or QUEUES[FIRST_QUEUE]) == q and not seen[offer.call_id] then
      seen[offer.call_id] = true
      n = n + 1
    end
  end
  return n
end

local function queue_full(q)
  return q.max_length > 0 and queue_length(q) >= q.max_length
end

-- The waiting entry takes its place in the line of its priority (by arrival, then call id).
local function line_up(entry)
  redis.call('ZADD', band_of(entry), entry.arrival_ms, entry.call_id)
end

local function leave_lines(call_id)
  for _, name in ipairs(QUEUE_ORDER) do
    for _, priority in ipairs(PRIORITIES) do
      redis.call('ZREM', QUEUES[name].bands[priority], call_id)
    end
  end
end

-- 1-based position of a waiting call among all priorities of its queue, 0 while offered, nil
-- if absent.
local function position(call_id)
  local entry = get_json(K_CALLS, call_id)
  if entry == nil then
    return nil
  end
  if entry.state ~= 'waiting' then
    return 0
  end
  local ahead = 0
  local own = band_of(entry)
  for _, priority in ipairs(PRIORITIES) do
    local key = queue_of(entry).bands[priority]
    if key == own then
      local rank = redis.call('ZRANK', key, call_id)
      if not rank then
        return nil
      end
      return ahead + rank + 1
    end
    ahead = ahead + redis.call('ZCARD', key)
  end
  return nil
end

local function drop_offer(offer)
  redis.call('HDEL', K_OFFERS, offer.offer_id)
  redis.call('ZREM', K_LEASES, offer.offer_id)
end

-- The offered entry goes back to its original place in the queue.
local function requeue(call_id, reason)
  local entry = get_json(K_CALLS, call_id)
  if not entry then
    return
  end
  entry.state = 'waiting'
  entry.offer_id = nil
  entry.agent_id = nil
  entry.group = nil
  entry.last_failure = reason
  put_json(K_CALLS, call_id, entry)
  line_up(entry)
end

-- The live offers of an offered entry: its ring_all group, or its one offer.
local function offers_of(entry)
  if entry.group then
    return entry.group
  end
  return entry.offer_id and { entry.offer_id } or {}
end

-- One offer of the entry is over (failed, expired, its agent logged out): the entry goes back
-- to its place once no offer of its group is live any more.
local function release_offer(offer, reason)
  drop_offer(offer)
  local entry = get_json(K_CALLS, offer.call_id)
  if entry and entry.group and entry.state == 'offered' then
    local left = {}
    for _, offer_id in ipairs(entry.group) do
      if offer_id ~= offer.offer_id and redis.call('HEXISTS', K_OFFERS, offer_id) == 1 then
        left[#left + 1] = offer_id
      end
    end
    if #left > 0 then
      entry.group = left
      if entry.offer_id == offer.offer_id then
        entry.offer_id = left[1]
        entry.agent_id = get_json(K_OFFERS, left[1]).agent_id
      end
      put_json(K_CALLS, entry.call_id, entry)
      return
    end
  end
  requeue(offer.call_id, reason)
end

-- --- agents ------------------------------------------------------------------------------

-- The agent's state has a transition for this event (agent_state.TRANSITIONS).
local function allowed(state, event)
  local row = TRANSITIONS[state]
  return row ~= nil and row[event] ~= nil
end

-- The one way an agent's state changes (agent_state.AgentMachine._move). The caller sets the
-- fields the new state needs first: idle_since_ms (available), wrap_up_until_ms (wrap_up),
-- call_id and offer_id (reserved, on_call).
local function move(agent, event, to, since, by, reason, cause)
  local from = agent.state
  if not (allowed(from, event) and TRANSITIONS[from][event][to]) then
    error('agent ' .. agent.agent_id .. ': event ' .. event .. ' in state ' .. from .. ' cannot lead to ' .. to)
  end
  if from == 'available' then
    redis.call('ZREM', K_AVAILABLE, agent.agent_id)
  end
  if from == 'wrap_up' then
    redis.call('ZREM', K_WRAP_UPS, agent.agent_id)
    agent.wrap_up_until_ms = nil
  end
  if to ~= 'reserved' then
    agent.offer_id = nil
    agent.prev_since_ms = nil
  end
  if to == 'available' or to == 'paused' or to == 'logged_out' then
    agent.call_id = nil
    agent.call_queue = nil
  end
  agent.state = to
  agent.since_ms = since
  agent.reason = reason
  if to == 'available' then
    redis.call('ZADD', K_AVAILABLE, agent.idle_since_ms, agent.agent_id)
  end
  if to == 'wrap_up' then
    redis.call('ZADD', K_WRAP_UPS, agent.wrap_up_until_ms, agent.agent_id)
  end
  put_json(K_AGENTS, agent.agent_id, agent)
  local data = {
    agent_id = agent.agent_id,
    previous = from,
    state = to,
    event = cause or event,
    by = by,
    reason = reason,
    call_id = agent.call_id or cjson.null,
    since_ms = since,
  }
  redis.call('XADD', K_EVENTS, 'MAXLEN', '~', EVENTS_MAXLEN, '*', 'type', AGENT_STATE_EVENT, 'data', cjson.encode(data))
end

-- The agent becomes AVAILABLE, idle since `now` (the back of the idle line).
local function make_available(agent, event, now, by, reason, cause)
  agent.idle_since_ms = now
  move(agent, event, 'available', now, by, reason, cause)
end

-- Wrap-ups due by `now` end, as if each ended at its deadline.
local function end_wrap_ups(now)
  local due = redis.call('ZRANGEBYSCORE', K_WRAP_UPS, '-inf', now)
  for _, agent_id in ipairs(due) do
    local agent = get_json(K_AGENTS, agent_id)
    if agent ~= nil and agent.state == 'wrap_up' and agent.wrap_up_until_ms then
      make_available(agent, 'tick', agent.wrap_up_until_ms, 'system', '', WRAP_UP_EXPIRED)
    else
      redis.call('ZREM', K_WRAP_UPS, agent_id) -- never written by these scripts; repair
    end
  end
end

-- The agent still holds this offer (and not a newer one).
local function holds(agent, offer)
  return agent ~= nil and agent.state == 'reserved' and agent.offer_id == offer.offer_id
end

-- The offered entry's offer is withdrawn (its caller left, or asked for a callback): the agent
-- gets back exactly the state he had before it (same since and idle-since), keeping his turn.
local function withdraw_offer(entry, reason)
  if entry.state ~= 'offered' then
    return
  end
  for _, offer_id in ipairs(offers_of(entry)) do
    local offer = get_json(K_OFFERS, offer_id)
    if offer then
      drop_offer(offer)
      local agent = get_json(K_AGENTS, offer.agent_id)
      if holds(agent, offer) then
        move(agent, 'offer_withdrawn', 'available', agent.prev_since_ms or agent.idle_since_ms, 'system', reason)
      end
    end
  end
end

-- The offer failed (no answer, busy, lease ran out ...): the call goes back in place; the agent
-- is paused when his side failed and the policy says so, else available, idle since now.
local function fail_offer(offer, now, reason, agent_fault, declined)
  release_offer(offer, reason)
  local agent = get_json(K_AGENTS, offer.agent_id)
  if holds(agent, offer) then
    if declined then  -- he declined it from his desk: paused, whatever the policy
      move(agent, 'offer_failed', 'paused', now, 'agent', reason)
    elseif agent_fault and PAUSE_ON_AGENT_FAILURE then
      move(agent, 'offer_failed', 'paused', now, 'system', reason)
    else
      make_available(agent, 'offer_failed', now, 'system', reason)
    end
  end
end

-- A moving average of handle times (estimate.next_handle_average): the mean of the first
-- HANDLE_SAMPLES, then exponentially weighted like the mean of the last HANDLE_SAMPLES.
local function record_handle_time(ms)
  local stats = redis.call('HMGET', K_STATS, 'handle_ms', 'handle_n')
  local average, n = tonumber(stats[1]), tonumber(stats[2]) or 0
  if average == nil or n <= 0 then
    average, n = ms, 0
  elseif n < HANDLE_SAMPLES then
    average = average + (ms - average) / (n + 1)
  else
    average = average + (ms - average) * 2 / (HANDLE_SAMPLES + 1)
  end
  redis.call('HSET', K_STATS, 'handle_ms', math.floor(average + 0.5), 'handle_n', math.min(n + 1, HANDLE_SAMPLES))
end

-- The agent's answered call ended (call_finished, or his call was transferred to another agent:
-- reason says so): wrap-up of the call's queue (0: available, idle since now), the call's talk
-- time adds to his talk_ms, its handle time joins the moving average; a lost call makes him
-- available at once and is not averaged. The caller has checked he is ON_CALL with the call.
local function end_call(agent, now, lost, reason)
  agent.talk_ms = (agent.talk_ms or 0) + math.max(0, now - agent.since_ms)
  if lost then
    make_available(agent, 'call_ended', now, 'system', CALL_LOST)
    return
  end
  record_handle_time(math.max(0, now - agent.since_ms))
  local q = QUEUES[agent.call_queue or FIRST_QUEUE] or QUEUES[FIRST_QUEUE]
  if q.wrap_up_ms > 0 then
    agent.wrap_up_until_ms = now + q.wrap_up_ms
    move(agent, 'call_ended', 'wrap_up', now, 'system', reason)
  else
    make_available(agent, 'call_ended', now, 'system', reason)
  end
end
