-- Return one item whose lease has expired: to pending with attempts + 1, to dead once attempts
-- reach max_attempts, or to cancelled when a cancel was requested. The claim key's absence is
-- the proof of expiry (its PX ran out), so a racing heartbeat or a second reaper finds nothing
-- to do: running this twice, or from many processes, is safe. ARGV: [3] id.
local id = ARGV[3]
local ik = ITEM_PREFIX .. id
local f = redis.call('HMGET', ik, 'status', 'agent_id', 'fence', 'trace_id', 'attempts',
  'max_attempts', 'cancel_requested')
local st = f[1]
if not st or not HELD[st] then
  redis.call('ZREM', LEASES, id)
  return { 'skip' }
end
local ck = CLAIM_PREFIX .. id
if redis.call('EXISTS', ck) == 1 then
  -- Still live: the registry score was stale; realign it with the key's real expiry.
  local now = now_us()
  redis.call('ZADD', LEASES, ms(now) + redis.call('PTTL', ck), id)
  return { 'skip' }
end
local now = now_us()
local attempts = tonumber(f[5]) + 1
local to = 'pending'
if f[7] == '1' then
  to = 'cancelled'
elseif attempts >= tonumber(f[6]) then
  to = 'dead'
end
drop_claim(ik, id)
redis.call('HSET', ik, 'attempts', attempts, 'updated_at', fmt(now))
if to == 'pending' then
  back_to_pending(ik, id, now, ms(now))  -- due now: the next sweep sends it
else
  redis.call('HSET', ik, 'status', to, 'completed_at', fmt(now))
end
move(id, st, to, now)
if f[2] then
  redis.call('HSET', AGENT_PREFIX .. f[2], 'status', 'idle')
end
emit('lease_expired', id, f[2], f[3], f[4], to, '')
if to ~= 'pending' then
  emit(to, id, f[2], f[3], f[4], to, '')
end
return { 'reaped', to }
