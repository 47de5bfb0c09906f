-- ARGV: now_ms, limit. Offers whose lease expiry is <= now fail with reason "lease-expired".
-- Returns the expired offers as JSON strings (at most `limit`; the caller runs it again).
local now = tonumber(ARGV[1])
end_wrap_ups(now)
local ids = redis.call('ZRANGEBYSCORE', K_LEASES, '-inf', now, 'LIMIT', 0, tonumber(ARGV[2]))
local expired = {}
for _, offer_id in ipairs(ids) do
  local offer = get_json(K_OFFERS, offer_id)
  if offer then
    fail_offer(offer, now, 'lease-expired', false)
    expired[#expired + 1] = cjson.encode(offer)
  else
    redis.call('ZREM', K_LEASES, offer_id)
  end
end
return expired
