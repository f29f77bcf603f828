-- Submit a new pending item, and optionally claim it in the same atomic step.
-- ARGV: [2] id, [3] agent to claim for ('' for none), [4] lease ms, [5..] field/value pairs.
local id, agent, lease_ms = ARGV[2], ARGV[3], tonumber(ARGV[4])
local ik = ITEM_PREFIX .. id
if redis.call('EXISTS', ik) == 1 then
  return { 'err', 'exists', id }
end
local now = now_us()
local fields = { 'id', id, 'status', 'pending', 'progress', 0, 'attempts', 0,
  'created_at', fmt(now), 'updated_at', fmt(now) }
for i = 5, #ARGV do
  fields[#fields + 1] = ARGV[i]
end
redis.call('HSET', ik, unpack(fields))
move(id, nil, 'pending', now)
make_ready(ik, id)
emit('submitted', id, agent, nil, redis.call('HGET', ik, 'trace_id'), 'pending', '')
if agent ~= '' then
  return do_claim(id, agent, lease_ms, now)
end
return ok_item(ik)
