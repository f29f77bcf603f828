-- Claim the role's most urgent pending item: highest priority first, then oldest
-- (equal scores sort by id, and ids sort by creation time).
-- ARGV: [3] role, [4] agent, [5] lease ms.
local ready = READY_KEY[ARGV[3]]
local now = now_us()
-- A ready entry is always pending; the loop only guards against a damaged registry.
for _ = 1, 16 do
  local top = redis.call('ZRANGE', ready, 0, 0)
  if #top == 0 then
    return { 'none' }
  end
  local reply = do_claim(top[1], ARGV[4], tonumber(ARGV[5]), now)
  if reply[1] == 'ok' then
    return reply
  end
  redis.call('ZREM', ready, top[1])
end
return { 'none' }
