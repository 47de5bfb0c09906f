-- ARGV: now_ms, lease_ms, callback_lease_ms. Offers the first waiting call (highest priority, then
-- earliest arrival) that has an eligible available agent to the agent the STRATEGY picks among
-- them (the rules, and their Python twin: hotline/queue/routing.py). Returns the offer as JSON,
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

-- The available agents, longest idle first (ties: agent id, as ZRANGE orders equal scores).
local agents = {}
for _, agent_id in ipairs(redis.call('ZRANGE', K_AVAILABLE, 0, AGENT_LIMIT - 1)) do
  local agent = get_json(K_AGENTS, agent_id)
  if agent == nil or agent.state ~= 'available' then
    redis.call('ZREM', K_AVAILABLE, agent_id) -- never written by these scripts; repair
  else
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

local REQUIRED = {}
for _, skill in ipairs(REQUIRED_SKILLS) do
  REQUIRED[skill] = true
end

-- The skills this call needs: the queue's, then its own not already among them.
local function needed_skills(entry)
  local needed = {}
  for _, skill in ipairs(REQUIRED_SKILLS) do
    needed[#needed + 1] = skill
  end
  for _, skill in ipairs(entry.skills or {}) do
    if not REQUIRED[skill] then
      needed[#needed + 1] = skill
    end
  end
  return needed
end

-- The level a call that waited wait_ms accepts (routing.min_level).
local function min_level(wait_ms)
  local level = SKILL_STEPS[1][2]
  for _, step in ipairs(SKILL_STEPS) do
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

local last_offered = nil
if STRATEGY == 'round_robin' then
  last_offered = redis.call('GET', K_LAST_OFFERED) or nil
end

-- The agent the strategy picks among the eligible ones (routing.best_agent). Agents come
-- longest idle first and only a strictly better one replaces the pick: ties go to idle time.
local function best_agent(needed, level)
  local best, best_key, first, next_up
  for _, agent in ipairs(agents) do
    if eligible(agent, needed, level) then
      if STRATEGY == 'longest_idle' then
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

-- The first entry, in priority and arrival order, whose turn has come and that an available
-- agent can take.
local entry, agent
local nobody = {} -- (skills, level) pairs that found no agent in this scan
local scanned = 0
for _, priority in ipairs(PRIORITIES) do
  local key = BAND_KEYS[priority]
  local start = 0
  while agent == nil and scanned < SCAN_LIMIT do
    local ids = redis.call('ZRANGE', key, start, start + 31)
    if #ids == 0 then
      break
    end
    local kept = 0
    for _, call_id in ipairs(ids) do
      local candidate = get_json(K_CALLS, call_id)
      if candidate == nil or candidate.state ~= 'waiting' or band_of(candidate) ~= key then
        redis.call('ZREM', key, call_id) -- never written by these scripts; repair
      else
        kept = kept + 1
        scanned = scanned + 1
        if (candidate.not_before_ms or 0) <= now then
          local needed = needed_skills(candidate)
          local level = min_level(now - candidate.arrival_ms)
          local signature = level .. '|' .. table.concat(needed, '\0')
          if not nobody[signature] then
            local pick = best_agent(needed, level)
            if pick then
              entry, agent = candidate, pick
              break
            end
            nobody[signature] = true
          end
        end
        if scanned >= SCAN_LIMIT then
          break
        end
      end
    end
    start = start + kept
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
  skills = entry.skills,
}
if entry.callback then
  offer.callback = true
  offer.caller = entry.callback_number
  offer.attempt = (entry.callback_attempts or 0) + 1
end
put_json(K_OFFERS, offer_id, offer)
redis.call('ZADD', K_LEASES, offer.expires_ms, offer_id)
redis.call('SET', K_LAST_OFFERED, agent.agent_id)

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
