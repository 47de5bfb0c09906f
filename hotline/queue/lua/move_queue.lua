-- ARGV: call_id, queue, now_ms. Overflow to another queue: a waiting entry (not a callback, not
-- offered) moves to `queue`'s line of its priority with its arrival time, so it stands behind
-- the calls of that queue that arrived before it and ahead of the later ones; its max wait
-- there counts from now (entered_ms). Returns its position there; 0 if it is not waiting (offered,
-- a callback: no change), -1 if it is not queued, -2 if `queue` is full (no change).
local call_id, name, now = ARGV[1], ARGV[2], tonumber(ARGV[3])
end_wrap_ups(now)
local target = QUEUES[name]
if target == nil then
  return redis.error_reply('unknown queue ' .. name)
end
local entry = get_json(K_CALLS, call_id)
if entry == nil then
  return -1
end
if entry.state ~= 'waiting' or entry.callback then
  return 0
end
if queue_of(entry) == target then
  return position(call_id)
end
if queue_full(target) then
  return -2
end
redis.call('ZREM', band_of(entry), call_id)
entry.overflowed_from = queue_of(entry).name
entry.queue = target.name
entry.entered_ms = now
entry.overflow_now = nil
put_json(K_CALLS, call_id, entry)
line_up(entry)
return position(call_id)
