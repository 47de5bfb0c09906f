-- ARGV: offer_id, now_ms, reason, agent_fault ("1": the agent's side failed; "2": the agent
-- declined the offer from his desk, paused with the reason whatever the policy).
-- Returns 1 if the offer was live, 0 otherwise (no change).
local now = tonumber(ARGV[2])
end_wrap_ups(now)
local offer = get_json(K_OFFERS, ARGV[1])
if offer == nil then
  return 0
end
fail_offer(offer, now, ARGV[3], ARGV[4] ~= '0', ARGV[4] == '2')
return 1
