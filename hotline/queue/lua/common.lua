-- Prepended to every ACD script (see acd.py). Rules kept by every script:
--  * an entry (call) is in exactly one place: waiting (in the ZSET, state "waiting"), offered
--    (state "offered", one offer, one RESERVED agent), or answered (only in oncall);
--  * an agent holds at most one offer or call, and is in the available ZSET iff AVAILABLE;
--  * an entry keeps its original arrival score, so a failed offer puts it back where it was.
-- KEYS, in the order of keys.AcdKeys.all():
local K_WAITING, K_CALLS, K_OFFERS, K_LEASES = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local K_AGENTS, K_AVAILABLE, K_ONCALL, K_SEQ = KEYS[5], KEYS[6], KEYS[7], KEYS[8]

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

-- The agent becomes AVAILABLE; idle_since orders him among idle agents (oldest first).
local function make_available(agent, since, idle_since)
  agent.state = 'available'
  agent.since_ms = since
  agent.idle_since_ms = idle_since
  agent.call_id = nil
  agent.offer_id = nil
  agent.prev_since_ms = nil
  put_json(K_AGENTS, agent.agent_id, agent)
  redis.call('ZADD', K_AVAILABLE, idle_since, agent.agent_id)
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
  entry.last_failure = reason
  put_json(K_CALLS, call_id, entry)
  redis.call('ZADD', K_WAITING, entry.arrival_ms, call_id)
end

-- The agent still holds this offer (and not a newer one).
local function holds(agent, offer)
  return agent ~= nil and agent.state == 'reserved' and agent.offer_id == offer.offer_id
end

-- The offer failed (no answer, busy, lease ran out): call back in place, agent idle since now.
local function fail_offer(offer, now, reason)
  drop_offer(offer)
  requeue(offer.call_id, reason)
  local agent = get_json(K_AGENTS, offer.agent_id)
  if holds(agent, offer) then
    make_available(agent, now, now)
  end
end
