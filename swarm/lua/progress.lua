-- Record progress; a progress report also renews the lease, for the claim's length.
-- ARGV: [3] id, [4] agent, [5] fence or '', [6] percent, [7] note.
local id, agent = ARGV[3], ARGV[4]
local refused = check_holder(id, agent, ARGV[5], 'progress')
if refused then
  return refused
end
local now = now_us()
local ik = ITEM_PREFIX .. id
local f = redis.call('HMGET', ik, 'status', 'fence', 'trace_id')
redis.call('HSET', ik, 'status', 'in_progress', 'progress', ARGV[6], 'note', ARGV[7], 'updated_at', fmt(now))
move(id, f[1], 'in_progress', now)
renew(id, '', now)
emit('progressed', id, agent, f[2], f[3], 'in_progress', ARGV[6])
return ok_item(ik)
