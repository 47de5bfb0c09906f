-- ARGV: call_id, priority. Raises a waiting or offered call to `priority` (never lowers it); a
-- waiting call moves to that priority's line with its arrival time, so it keeps its order among
-- the calls that arrived before and after it. Returns the call's priority, or -1 if not queued.
local entry = get_json(K_CALLS, ARGV[1])
if entry == nil then
  return -1
end
local wanted = tonumber(ARGV[2])
if wanted > (entry.priority or 0) then
  if entry.state == 'waiting' then
    redis.call('ZREM', band_of(entry), entry.call_id)
  end
  entry.priority = wanted
  put_json(K_CALLS, entry.call_id, entry)
  if entry.state == 'waiting' then
    line_up(entry)
  end
end
return entry.priority or 0
