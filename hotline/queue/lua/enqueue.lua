-- ARGV: call_id, worker_id, caller, arrival_ms, priority, skills (JSON list, sorted). Returns the
-- 1-based position, 0 when the call is already offered or answered (a retried enqueue must not
-- queue it a second time), or -1 when the queue already holds MAX_LENGTH calls (not queued).
-- A retried enqueue changes nothing, not even the priority (set_priority raises it) or skills.
local call_id = ARGV[1]
local entry = get_json(K_CALLS, call_id)
if entry == nil then
  if redis.call('HEXISTS', K_ONCALL, call_id) == 1 then
    return 0
  end
  if MAX_LENGTH > 0 and redis.call('HLEN', K_CALLS) >= MAX_LENGTH then
    return -1
  end
  entry = {
    call_id = call_id,
    worker_id = ARGV[2],
    caller = ARGV[3],
    arrival_ms = tonumber(ARGV[4]),
    priority = tonumber(ARGV[5]),
    state = 'waiting',
    attempts = 0,
  }
  local skills = cjson.decode(ARGV[6])
  if #skills > 0 then
    entry.skills = skills -- omitted when empty: cjson would write an empty list as {}
  end
  put_json(K_CALLS, call_id, entry)
  line_up(entry)
elseif entry.state ~= 'waiting' then
  return 0
end
return position(call_id)
