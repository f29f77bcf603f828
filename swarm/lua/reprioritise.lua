-- Change a pending item's priority. Its ready-set rank changes at once (claim_next sees it), and
-- an item that goes through the queues is put in the outbox so that a sweep sends it to the new
-- priority's queue: due now, or when its retry backoff ends if that is later. The message still
-- in the old queue is not withdrawn: whichever arrives first claims the item and the other is
-- skipped, so lowering a priority does not delay a message already queued.
-- ARGV: [3] id, [4] the new priority.
local id, priority = ARGV[3], ARGV[4]
local ik = ITEM_PREFIX .. id
local f = redis.call('HMGET', ik, 'status', 'priority', 'trace_id', 'manual', 'retry_at')
local st = f[1]
if not st then
  return { 'err', 'not_found', id }
end
if st ~= 'pending' then
  return { 'err', 'transition', id, st, 'reprioritise' }
end
if f[2] == priority then
  return ok_item(ik)
end
local now = now_us()
redis.call('HSET', ik, 'priority', priority, 'updated_at', fmt(now))
move(id, st, 'pending', now)
local due = ms(now)
if f[5] and tonumber(f[5]) > due then
  due = tonumber(f[5]) -- a retry still in its backoff keeps it
end
if f[4] == '1' then
  due = false
end
make_ready(ik, id, now, due)
emit('reprioritised', id, nil, nil, f[3], 'pending', f[2] .. ' -> ' .. priority)
return ok_item(ik)
