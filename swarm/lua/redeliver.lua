-- The redelivery pass for one role: re-sends owed deliveries whose messages the broker lost.
--
-- The caller observed the broker in one atomic step at `seen_ms` (Redis server time): the
-- messages waiting in the role's queues (`queued`), and the work ids of messages a consumer took
-- less than the in-flight window ago and may still be about to claim (ARGV[8..]). Every item in
-- the sent set scored at or before `seen_ms` had its message sent by then; each such message is
-- either still queued, in flight, or consumed (and then its item left the set, claimed, unless
-- the consumer died before claiming: the loss this pass exists for). So
--   missing = owed before seen_ms - queued - in flight (of those owed)
-- is a lower bound on the messages lost; duplicates and surplus messages only lower it.
--
-- It re-sends min(missing, ARGV[7]) items, oldest sent first and at least ARGV[6] ms old, and
-- scores them just after now, so that a concurrent pass (whose observation predates the
-- re-send) no longer counts them. Any message can stand in for any owed item of its role (claim_delivery.lua), so
-- re-sending the oldest is as good as re-sending the lost one. Callers pass as the limit the
-- shortfall they saw at their previous pass: a message observed in the instant between a
-- consumer's pop and its bookkeeping is not mistaken for a loss.
-- ARGV: [3] role, [4] seen_ms, [5] queued, [6] min age ms, [7] limit, [8..] in-flight ids.
-- Returns { 'ok', missing, flat list }: id, fence or '', type, role, priority and traceparent
-- or '' of each item to send.
local role, seen_ms, queued = ARGV[3], tonumber(ARGV[4]), tonumber(ARGV[5])
local sent = SENT_KEY[role]
local in_flight = 0
for i = 8, #ARGV do
  local score = redis.call('ZSCORE', sent, ARGV[i])
  if score and tonumber(score) <= seen_ms then
    in_flight = in_flight + 1
  end
end
local missing = redis.call('ZCOUNT', sent, '-inf', seen_ms) - queued - in_flight
local take = math.min(missing, tonumber(ARGV[7]))
local out = {}
if take <= 0 then
  return { 'ok', missing, out }
end
local now = ms(now_us())
local oldest = math.min(seen_ms, now - tonumber(ARGV[6]))
local rescored = now + 1 -- after any observation made before this script, even in this ms
local ids = redis.call('ZRANGEBYSCORE', sent, '-inf', oldest, 'LIMIT', 0, take)
for _, id in ipairs(ids) do
  local f = redis.call('HMGET', ITEM_PREFIX .. id, 'status', 'fence', 'type', 'role', 'priority',
    'traceparent', 'trace_id')
  if f[1] == 'pending' then
    redis.call('ZADD', sent, rescored, id)
    for _, v in ipairs({ id, f[2] or '', f[3], f[4], f[5], f[6] or '' }) do
      out[#out + 1] = v
    end
    emit('redelivered', id, '', f[2], f[7], 'pending', 'its queue message was lost')
  else
    redis.call('ZREM', sent, id) -- a damaged registry: only pending items are owed
  end
end
if #out > 0 then
  redis.call('HINCRBY', METRICS, 'redelivered:' .. role, #out / 6)
  redis.call('HSET', METRICS, 'last_redeliver_ms:' .. role, fmt(now))
end
return { 'ok', missing, out }
