-- Takes up to ARGV[3] outbox entries that are due: pending items whose message must be sent
-- (a retry whose backoff is over, a reaped or released item, or a send its writer never
-- confirmed). Each taken entry is pushed one grace ahead, so a second sweeper does not send it
-- too and, should this sender die before confirming, another sends it after the grace.
-- Entries of items that are no longer pending are dropped.
-- Returns { 'ok', flat list }: id, fence or '', type, role, priority and traceparent or '' of each
-- item to send (the traceparent lets the sender send it in the item's trace).
local now = now_us()
local due = redis.call('ZRANGEBYSCORE', OUTBOX, '-inf', ms(now), 'LIMIT', 0, tonumber(ARGV[3]))
local out = {}
for _, id in ipairs(due) do
  local f = redis.call('HMGET', ITEM_PREFIX .. id, 'status', 'fence', 'type', 'role', 'priority', 'traceparent')
  if f[1] == 'pending' then
    redis.call('ZADD', OUTBOX, ms(now) + DISPATCH_GRACE_MS, id)
    mark_sent(id, f[4], f[5], now) -- about to be in the queue: a message of its role may claim it
    for _, v in ipairs({ id, f[2] or '', f[3], f[4], f[5], f[6] or '' }) do
      out[#out + 1] = v
    end
  else
    redis.call('ZREM', OUTBOX, id)
  end
end
return { 'ok', out }
