-- ARGV: now_ms, lease_ms, callback_lease_ms. Offers the first waiting call (highest priority, then
-- earliest arrival, then call id, over the lines of every queue: routing.dispatch_order) that has
-- an eligible available agent to the agent its queue's strategy picks among them (the rules, and
-- their Python twin: hotline/queue/routing.py, choose_across). Returns the offer as JSON,
-- or false when no (call, eligible agent) pair exists. A callback entry's offer carries the
-- number to dial back and a longer lease (the agent is on the line while the caller's phone
-- rings); a callback waiting for its retry time (not_before_ms) keeps its place, passed over.
-- Work: at most AGENT_LIMIT agents read once, at most SCAN_LIMIT entries scanned; a (skills,
-- level) pair that found no agent is not tried again in the same scan.
local now = tonumber(ARGV[1])
local lease = tonumber(ARGV[2])
local SCAN_LIMIT = 1000 -- waiting entries looked at per dispatch, over all priorities
local AGENT_LIMIT = 1000 -- available agents considered per dispatch (the longest idle)
end_wrap_ups(now)

-- The available agents, longest idle first (ties: agent id, as ZRANGE orders equal scores);
-- one whose softphone the control plane found unreachable is passed over (agent_device.lua).
local agents = {}
for _, agent_id in ipairs(redis.call('ZRANGE', K_AVAILABLE, 0, AGENT_LIMIT - 1)) do
  local agent = get_json(K_AGENTS, agent_id)
  if agent == nil or agent.state ~= 'available' then
    redis.call('ZREM', K_AVAILABLE, agent_id) -- never written by these scripts; repair
  elseif agent.device ~= 'unreachable' then
    agents[#agents + 1] = agent
  end
end
if #agents == 0 then
  return false
end

-- a < b in byte order: code-point order for UTF-8, as Python orders str (Lua's < on strings
-- follows the server's collation locale).
local function before(a, b)
  for i = 1, math.min(#a, #b) do
    local x, y = string.byte(a, i), string.byte(b, i)
    if x ~= y then
      return x < y
    end
  end
  return #a < #b
end

-- The skills this call needs: its queue's, then its own not already among them.
local function needed_skills(q, entry)
  local needed, seen = {}, {}
  for _, skill in ipairs(q.required) do
    needed[#needed + 1] = skill
    seen[skill] = true
  end
  for _, skill in ipairs(entry.skills or {}) do
    if not seen[skill] then
      needed[#needed + 1] = skill
    end
  end
  return needed
end

-- The level a call of queue q that waited wait_ms accepts (routing.min_level).
local function min_level(q, wait_ms)
  local level = q.steps[1][2]
  for _, step in ipairs(q.steps) do
    if wait_ms >= step[1] then
      level = step[2]
    end
  end
  return level
end

local function level_of(agent, skill)
  local skills = agent.skills
  return (type(skills) == 'table' and tonumber(skills[skill])) or 0
end

local function eligible(agent, needed, level)
  if level <= 0 then
    return true
  end
  for _, skill in ipairs(needed) do
    if level_of(agent, skill) < level then
      return false
    end
  end
  return true
end

local last_offered = redis.call('GET', K_LAST_OFFERED) or nil

-- The agent the strategy picks among the eligible ones (routing.best_agent). Agents come
-- longest idle first and only a strictly better one replaces the pick: ties go to idle time.
local function best_agent(STRATEGY, needed, level)
  local best, best_key, first, next_up
  for _, agent in ipairs(agents) do
    if eligible(agent, needed, level) then
      if STRATEGY == 'longest_idle' or STRATEGY == 'ring_all' then
        return agent
      elseif STRATEGY == 'round_robin' then
        local id = agent.agent_id
        if first == nil or before(id, first.agent_id) then
          first = agent
        end
        if last_offered and before(last_offered, id) and (next_up == nil or before(id, next_up.agent_id)) then
          next_up = agent
        end
      else
        local key
        if STRATEGY == 'fewest_calls' then
          key = agent.calls_answered or 0
        elseif STRATEGY == 'least_talk_time' then
          key = agent.talk_ms or 0
        else -- skills_weighted: the highest total level over the needed skills
          key = 0
          for _, skill in ipairs(needed) do
            key = key - level_of(agent, skill)
          end
        end
        if best == nil or key < best_key then
          best, best_key = agent, key
        end
      end
    end
  end
  if STRATEGY == 'round_robin' then
    return next_up or first
  end
  return best
end

-- One reader per queue over its line of one priority, 32 entries at a time. An entry removed
-- as a repair is not counted in the offset, so the next batch starts right after the last kept.
local function reader(key)
  return { key = key, start = 0, ids = {}, scores = {}, i = 1, done = false }
end

local function peek(r)
  if r.i > #r.ids then
    if r.done then
      return nil
    end
    local got = redis.call('ZRANGE', r.key, r.start, r.start + 31, 'WITHSCORES')
    r.ids, r.scores, r.i = {}, {}, 1
    for n = 1, #got, 2 do
      r.ids[#r.ids + 1] = got[n]
      r.scores[#r.scores + 1] = tonumber(got[n + 1])
    end
    if #r.ids < 32 then
      r.done = true
    end
    if #r.ids == 0 then
      return nil
    end
  end
  return r.ids[r.i], r.scores[r.i]
end

-- The first entry, in priority and arrival order over all queues, whose turn has come and that
-- an available agent can take.
local entry, agent, entry_needed, entry_level
local nobody = {} -- (skills, level) pairs that found no agent in this scan
local scanned = 0
for _, priority in ipairs(PRIORITIES) do
  local readers = {}
  for _, name in ipairs(QUEUE_ORDER) do
    readers[#readers + 1] = reader(QUEUES[name].bands[priority])
  end
  while agent == nil and scanned < SCAN_LIMIT do
    -- The earliest head among the queues' lines (arrival, then call id).
    local r, call_id, score
    for _, each in ipairs(readers) do
      local id, at = peek(each)
      if id and (r == nil or at < score or (at == score and before(id, call_id))) then
        r, call_id, score = each, id, at
      end
    end
    if r == nil then
      break
    end
    r.i = r.i + 1
    local candidate = get_json(K_CALLS, call_id)
    if candidate == nil or candidate.state ~= 'waiting' or band_of(candidate) ~= r.key then
      redis.call('ZREM', r.key, call_id) -- never written by these scripts; repair
    else
      r.start = r.start + 1
      scanned = scanned + 1
      if (candidate.not_before_ms or 0) <= now then
        local q = queue_of(candidate)
        local needed = needed_skills(q, candidate)
        local level = min_level(q, now - candidate.arrival_ms)
        local signature = level .. '|' .. table.concat(needed, '\0')
        if not nobody[signature] then
          local pick = best_agent(q.strategy, needed, level)
          if pick then
            entry, agent = candidate, pick
            entry_needed, entry_level = needed, level
          else
            nobody[signature] = true
          end
        end
      end
    end
  end
  if agent ~= nil then
    break
  end
end
if agent == nil then
  return false
end

if entry.callback then
  lease = tonumber(ARGV[3]) or lease
end

-- Who rings: the agent picked; for a ring_all queue's caller (not a callback: its worker dials
-- one agent first) every eligible available agent, longest idle first, at most RING_LIMIT.
local RING_LIMIT = 32
local ringing = { agent }
if queue_of(entry).strategy == 'ring_all' and not entry.callback then
  ringing = {}
  for _, each in ipairs(agents) do
    if #ringing < RING_LIMIT and eligible(each, entry_needed, entry_level) then
      ringing[#ringing + 1] = each
    end
  end
end

local offers, ids = {}, {}
for _, each in ipairs(ringing) do
  local offer_id = entry.call_id .. ':' .. redis.call('INCR', K_SEQ)
  local offer = {
    offer_id = offer_id,
    call_id = entry.call_id,
    worker_id = entry.worker_id,
    agent_id = each.agent_id,
    agent_extension = each.extension,
    agent_uri = each.sip_uri,
    created_ms = now,
    expires_ms = now + lease,
    skills = entry.skills,
    queue = queue_of(entry).name,
  }
  if entry.callback then
    offer.callback = true
    offer.caller = entry.callback_number
    offer.attempt = (entry.callback_attempts or 0) + 1
  end
  offers[#offers + 1] = offer
  ids[#ids + 1] = offer_id
end
for _, offer in ipairs(offers) do
  if #offers > 1 then
    offer.group = ids
  end
  put_json(K_OFFERS, offer.offer_id, offer)
  redis.call('ZADD', K_LEASES, offer.expires_ms, offer.offer_id)
end
redis.call('SET', K_LAST_OFFERED, agent.agent_id)

entry.state = 'offered'
entry.offer_id = offers[1].offer_id
entry.agent_id = agent.agent_id
if #offers > 1 then
  entry.group = ids
end
entry.attempts = (entry.attempts or 0) + 1
put_json(K_CALLS, entry.call_id, entry)
redis.call('ZREM', band_of(entry), entry.call_id)

for n, each in ipairs(ringing) do
  each.prev_since_ms = each.since_ms
  each.call_id = entry.call_id
  each.offer_id = offers[n].offer_id
  move(each, 'offer', 'reserved', now, 'system', '')
end

-- The first offer; a ring_all group's offers all in `ring` (each to send to the caller's worker).
local result = {}
for k, v in pairs(offers[1]) do
  result[k] = v
end
if #offers > 1 then
  result.ring = offers
end
return cjson.encode(result)
