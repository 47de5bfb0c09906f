-- ARGV: now_ms, lease_ms. Offers the head of the queue to the longest-idle available agent.
-- Returns the offer as JSON, or false when there is no waiting call or no available agent.
local now = tonumber(ARGV[1])
local lease = tonumber(ARGV[2])

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
while entry == nil do
  local call_id = redis.call('ZRANGE', K_WAITING, 0, 0)[1]
  if not call_id then
    return false
  end
  entry = get_json(K_CALLS, call_id)
  if entry == nil or entry.state ~= 'waiting' then
    redis.call('ZREM', K_WAITING, call_id)
    entry = nil
  end
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
redis.call('ZREM', K_WAITING, entry.call_id)

agent.prev_since_ms = agent.since_ms
agent.state = 'reserved'
agent.since_ms = now
agent.call_id = entry.call_id
agent.offer_id = offer_id
put_json(K_AGENTS, agent.agent_id, agent)
redis.call('ZREM', K_AVAILABLE, agent.agent_id)

return cjson.encode(offer)
