-- ARGV: offer_id, now_ms, reason. Returns 1 if the offer was live, 0 otherwise (no change).
local offer = get_json(K_OFFERS, ARGV[1])
if offer == nil then
  return 0
end
fail_offer(offer, tonumber(ARGV[2]), ARGV[3])
return 1
