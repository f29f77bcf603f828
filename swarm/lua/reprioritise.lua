-- Change a pending item's priority. Its ready-set rank changes at once, and an item that goes
-- through the queues is put in the outbox, due now, so that a sweep sends it to the new
-- priority's queue (the message in the old queue is skipped when it arrives: the item will have
-- been claimed by then). ARGV: [3] id, [4] the new priority.
local id, priority = ARGV[3], ARGV[4]
local ik = ITEM_PREFIX .. id
local f = redis.call('HMGET', ik, 'status', 'priority', 'trace_id', 'manual')
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
if f[4] == '1' then
  due = false
end
make_ready(ik, id, now, due)
emit('reprioritised', id, nil, nil, f[3], 'pending', f[2] .. ' -> ' .. priority)
return ok_item(ik)
