-- ARGV: now_ms, lease_ms. Offers the head of the queue (highest priority, then earliest
-- arrival) to the longest-idle available agent. Returns the offer as JSON, or false when there
-- is no waiting call or no available agent.
local now = tonumber(ARGV[1])
local lease = tonumber(ARGV[2])
end_wrap_ups(now)

local agent
while agent == nil do
  local agent_id = redis.call('ZRANGE', K_AVAILABLE, 0, 0)[1]
  if not agent_id then
    return false
  end
  agent = get_json(K_AGENTS, agent_id)
  if agent == nil or agent.state ~= 'available' then
    -- Never written by these scripts; repair rather than wedge the queue on it.
    redis.call('ZREM', K_AVAILABLE, agent_id)
    agent = nil
  end
end

local entry
for _, priority in ipairs(PRIORITIES) do
  local key = BAND_KEYS[priority]
  while entry == nil do
    local call_id = redis.call('ZRANGE', key, 0, 0)[1]
    if not call_id then
      break
    end
    local candidate = get_json(K_CALLS, call_id)
    if candidate == nil or candidate.state ~= 'waiting' or band_of(candidate) ~= key then
      redis.call('ZREM', key, call_id) -- never written by these scripts; repair
    else
      entry = candidate
    end
  end
  if entry ~= nil then
    break
  end
end
if entry == nil then
  return false
end

local offer_id = entry.call_id .. ':' .. redis.call('INCR', K_SEQ)
local offer = {
  offer_id = offer_id,
  call_id = entry.call_id,
  worker_id = entry.worker_id,
  agent_id = agent.agent_id,
  agent_extension = agent.extension,
  agent_uri = agent.sip_uri,
  created_ms = now,
  expires_ms = now + lease,
}
put_json(K_OFFERS, offer_id, offer)
redis.call('ZADD', K_LEASES, offer.expires_ms, offer_id)

entry.state = 'offered'
entry.offer_id = offer_id
entry.agent_id = agent.agent_id
entry.attempts = (entry.attempts or 0) + 1
put_json(K_CALLS, entry.call_id, entry)
redis.call('ZREM', band_of(entry), entry.call_id)

agent.prev_since_ms = agent.since_ms
agent.call_id = entry.call_id
agent.offer_id = offer_id
move(agent, 'offer', 'reserved', now, 'system', '')

return cjson.encode(offer)
