-- Record progress; a progress report also renews the lease, for the claim's length.
-- ARGV: [2] id, [3] agent, [4] fence or '', [5] percent, [6] note.
local id, agent = ARGV[2], ARGV[3]
local refused = check_holder(id, agent, ARGV[4], 'progress')
if refused then
  return refused
end
local now = now_us()
local ik = ITEM_PREFIX .. id
local f = redis.call('HMGET', ik, 'status', 'fence', 'trace_id')
redis.call('HSET', ik, 'status', 'in_progress', 'progress', ARGV[5], 'note', ARGV[6], 'updated_at', fmt(now))
move(id, f[1], 'in_progress', now)
renew(id, '', now)
emit('progressed', id, agent, f[2], f[3], 'in_progress', ARGV[5])
return ok_item(ik)
