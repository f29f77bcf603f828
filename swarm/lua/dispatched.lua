-- Confirms that a message for a pending item was sent: its outbox entry goes, and the item is
-- (or stays, in its place) in its role's sent set, owed until an agent claims it. ARGV: [3] id,
-- [4] the item's fence when it was read for sending, or ''. A claim changes the fence, so a
-- confirmation that arrives after the item was claimed and went back to pending (a new
-- episode, with its own entry) leaves that entry alone. Returns { 'ok', 1 } if the entry went.
local id = ARGV[3]
local f = redis.call('HMGET', ITEM_PREFIX .. id, 'status', 'fence', 'role', 'priority', 'manual')
if f[1] == 'pending' and (f[2] or '') == ARGV[4] and f[5] ~= '1' then
  mark_sent(id, f[3], f[4], now_us())
  return { 'ok', redis.call('ZREM', OUTBOX, id) }
end
return { 'ok', 0 }
