-- ARGV: call_id, worker_id, caller, arrival_ms, priority, skills (JSON list, sorted), queue ("":
-- the first). Returns the 1-based position in the queue that took the call, 0 when the call is
-- already offered or answered (a retried enqueue must not queue it a second time), or -1 when
-- it could not be queued (QUEUE_FULL).
-- A full queue (max_length calls held) overflows: to its overflow queue (queue:<name>; followed
-- while that one is full too, each queue once), and the call keeps its arrival time there; to
-- callback or voicemail: the call is queued all the same but marked overflow_now, so that the
-- control plane's overflow_due reports it at once and its worker acts (the caller is already on
-- the line; a callback entry holds no line). No overflow target: -1, the call is not queued.
-- A retried enqueue changes nothing, not even the priority (set_priority raises it) or skills.
local call_id = ARGV[1]
local entry = get_json(K_CALLS, call_id)
if entry == nil then
  if redis.call('HEXISTS', K_ONCALL, call_id) == 1 then
    return 0
  end
  local q = QUEUES[ARGV[7] ~= '' and ARGV[7] or FIRST_QUEUE]
  if q == nil then
    return redis.error_reply('unknown queue ' .. ARGV[7])
  end
  local asked = q.name
  local overflow_now = false
  local seen = {}
  while queue_full(q) do
    seen[q.name] = true
    local next_q = q.overflow_queue and QUEUES[q.overflow_queue]
    if next_q and not seen[next_q.name] then
      q = next_q
    elseif q.overflow then
      overflow_now = true
      break
    else
      return -1
    end
  end
  entry = {
    call_id = call_id,
    worker_id = ARGV[2],
    caller = ARGV[3],
    arrival_ms = tonumber(ARGV[4]),
    entered_ms = tonumber(ARGV[4]),
    priority = tonumber(ARGV[5]),
    queue = q.name,
    state = 'waiting',
    attempts = 0,
  }
  if q.name ~= asked then
    entry.overflowed_from = asked
  end
  if overflow_now then
    entry.overflow_now = true
  end
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
