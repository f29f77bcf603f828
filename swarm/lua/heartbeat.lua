-- Renew the holder's lease. The reply carries cancel_requested, which is how a running
-- handler learns that its item was cancelled.
-- ARGV: [3] id, [4] agent, [5] fence or '', [6] lease ms or '' (the claim's length).
local id, agent = ARGV[3], ARGV[4]
local refused = check_holder(id, agent, ARGV[5], 'heartbeat')
if refused then
  return refused
end
local now = now_us()
renew(id, ARGV[6], now)
local ik = ITEM_PREFIX .. id
local f = redis.call('HMGET', ik, 'role', 'team')
touch_agent(agent, f[1], f[2], now, 'active')
return ok_item(ik)
