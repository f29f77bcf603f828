-- Re-run a failed or dead item: back to pending with a new attempt budget (attempts start again
-- from 0 against its max_attempts), owed a queue message at once (the next sweep sends it) unless
-- it was filed for manual claims. Its last error stays on it until its next outcome; the event's
-- detail says what it was retried from. ARGV: [3] id, [4] acting agent or ''.
local id, actor = ARGV[3], ARGV[4]
local ik = ITEM_PREFIX .. id
local f = redis.call('HMGET', ik, 'status', 'trace_id', 'fence', 'attempts', 'max_attempts')
local st = f[1]
if not st then
  return { 'err', 'not_found', id }
end
if st ~= 'failed' and st ~= 'dead' then
  return { 'err', 'transition', id, st, 'retry' }
end
local now = now_us()
redis.call('HDEL', ik, 'completed_at', 'retry_at', 'cancel_requested')
redis.call('HSET', ik, 'attempts', 0, 'updated_at', fmt(now))
back_to_pending(ik, id, now, ms(now))
move(id, st, 'pending', now)
emit('retried', id, actor, f[3], f[2], 'pending', 'was ' .. st .. ', attempts ' .. (f[4] or '0') .. '/' .. (f[5] or '?'))
return ok_item(ik)
