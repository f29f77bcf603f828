-- Cancel an item. A pending one is cancelled at once; a held one is marked cancel_requested,
-- stored here so that it survives worker restarts: its holder learns of it at its next
-- heartbeat, and it ends cancelled when released or reaped.
-- ARGV: [3] id, [4] acting agent or '', [5] why (the event's detail, e.g. a Celery revoke) or ''.
local id, actor, why = ARGV[3], ARGV[4], ARGV[5] or ''
local ik = ITEM_PREFIX .. id
local f = redis.call('HMGET', ik, 'status', 'trace_id', 'fence')
local st = f[1]
if not st then
  return { 'err', 'not_found', id }
end
if TERMINAL[st] then
  return { 'err', 'transition', id, st, 'cancel' }
end
local now = now_us()
if st == 'pending' then
  unready(ik, id)
  redis.call('HSET', ik, 'status', 'cancelled', 'cancel_requested', 1, 'updated_at', fmt(now),
    'completed_at', fmt(now))
  move(id, st, 'cancelled', now)
  emit('cancelled', id, actor, f[3], f[2], 'cancelled', why)
elseif redis.call('HGET', ik, 'cancel_requested') ~= '1' then
  redis.call('HSET', ik, 'cancel_requested', 1, 'updated_at', fmt(now))
  emit('cancel_requested', id, actor, f[3], f[2], st, why)
end
return ok_item(ik)
