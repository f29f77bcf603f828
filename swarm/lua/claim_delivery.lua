-- A worker's claim for a queue message: the message's item if it is owed a delivery, else the
-- role's longest-owed item (any message of a role can stand in for any of its owed items, which
-- is what lets the redelivery pass re-send the oldest rather than the unknown lost one).
-- Not owed, and so not claimed through a message: an item filed for manual claims, and one in a
-- retry's backoff (it is sent when the backoff ends). ARGV: [3] id, [4] agent, [5] lease ms,
-- [6] the message's role. Returns claim.lua's replies; when neither the message's item nor any
-- other is claimable, the refusal of the message's own item.
local id, agent, lease_ms, role = ARGV[3], ARGV[4], tonumber(ARGV[5]), ARGV[6]
local now = now_us()
local ik = ITEM_PREFIX .. id
local f = redis.call('HMGET', ik, 'status', 'manual', 'retry_at')
if not f[1] then
  return { 'err', 'not_found', id }
end
local refusal
if f[1] ~= 'pending' then
  refusal = do_claim(id, agent, lease_ms, now) -- names the holder, or the status
else
  if f[2] == '1' then
    refusal = { 'err', 'transition', id, 'pending', 'claim from a queue message (it is filed for manual claims)' }
  elseif f[3] and tonumber(f[3]) > ms(now) then
    refusal = { 'err', 'transition', id, 'pending', 'claim during its retry backoff' }
  else
    return do_claim(id, agent, lease_ms, now)
  end
end
local sent = SENT_KEY[role]
if not sent then
  return refusal
end
for _ = 1, 16 do
  local top = redis.call('ZRANGE', sent, 0, 0)
  if #top == 0 then
    return refusal
  end
  local reply = do_claim(top[1], agent, lease_ms, now)
  if reply[1] == 'ok' then
    return reply
  end
  redis.call('ZREM', sent, top[1]) -- only pending items are owed; guards a damaged registry
end
return refusal
