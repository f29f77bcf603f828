-- Register (or re-register) an agent; its metrics survive re-registration.
-- ARGV: [3] agent id, [4..] field/value pairs.
local agent = ARGV[3]
local ak = AGENT_PREFIX .. agent
local now = now_us()
local fields = {}
for i = 4, #ARGV do
  fields[#fields + 1] = ARGV[i]
end
redis.call('HSETNX', ak, 'completed', 0)
redis.call('HSETNX', ak, 'failed', 0)
redis.call('HSETNX', ak, 'duration_total_us', 0)
redis.call('HSET', ak, 'id', agent, 'status', 'idle', 'last_heartbeat', fmt(now), unpack(fields))
redis.call('ZADD', AGENTS, ms(now), agent)
emit('agent_registered', nil, agent, nil, nil, nil, redis.call('HGET', ak, 'role') or '')
return { 'ok', redis.call('HGETALL', ak) }
