-- Submit a new pending item, and optionally claim it in the same atomic step.
-- ARGV: [3] id, [4] agent to claim for ('' for none), [5] lease ms, [6] '1' to dispatch it to
-- the role's queue (its sender confirms; a sweeper sends it if not), '0' to leave it for manual
-- claims, [7..] field/value pairs.
local id, agent, lease_ms = ARGV[3], ARGV[4], tonumber(ARGV[5])
local ik = ITEM_PREFIX .. id
if redis.call('EXISTS', ik) == 1 then
  return { 'err', 'exists', id }
end
local now = now_us()
local fields = { 'id', id, 'status', 'pending', 'progress', 0, 'attempts', 0,
  'created_at', fmt(now), 'updated_at', fmt(now) }
for i = 7, #ARGV do
  fields[#fields + 1] = ARGV[i]
end
redis.call('HSET', ik, unpack(fields))
move(id, nil, 'pending', now)
local due = nil -- the submitter sends it now
if ARGV[6] ~= '1' then
  due = false -- manual claims only
  redis.call('HSET', ik, 'manual', 1)
end
make_ready(ik, id, now, due)
emit('submitted', id, agent, nil, redis.call('HGET', ik, 'trace_id'), 'pending', '')
if agent ~= '' then
  return do_claim(id, agent, lease_ms, now)
end
return ok_item(ik)
