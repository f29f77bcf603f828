-- An idle worker's agents are alive: renew their last heartbeat without touching their status
-- or metrics (an agent marked offline, or never registered, is left alone).
-- ARGV: [3..] agent ids. Returns how many were renewed.
local now = now_us()
local renewed = 0
for i = 3, #ARGV do
  local ak = AGENT_PREFIX .. ARGV[i]
  local status = redis.call('HGET', ak, 'status')
  if status and status ~= 'offline' then
    redis.call('HSET', ak, 'last_heartbeat', fmt(now))
    redis.call('ZADD', AGENTS, ms(now), ARGV[i])
    renewed = renewed + 1
  end
end
return { 'ok', renewed }
