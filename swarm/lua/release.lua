-- The holder gives its item back: pending again (attempts unchanged), or cancelled when a
-- cancel was requested while it ran. ARGV: [3] id, [4] agent, [5] fence or ''.
local id, agent = ARGV[3], ARGV[4]
local refused = check_holder(id, agent, ARGV[5], 'release')
if refused then
  return refused
end
local now = now_us()
local ik = ITEM_PREFIX .. id
local f = redis.call('HMGET', ik, 'status', 'fence', 'trace_id', 'cancel_requested')
drop_claim(ik, id)
local to = f[4] == '1' and 'cancelled' or 'pending'
redis.call('HSET', ik, 'updated_at', fmt(now))
if to == 'pending' then
  back_to_pending(ik, id, now, ms(now))  -- due now: the next sweep sends it
else
  redis.call('HSET', ik, 'status', to, 'completed_at', fmt(now))
end
move(id, f[1], to, now)
redis.call('HSET', AGENT_PREFIX .. agent, 'status', 'idle')
emit('released', id, agent, f[2], f[3], to, '')
if to == 'cancelled' then
  emit('cancelled', id, agent, f[2], f[3], to, '')
end
return ok_item(ik)
