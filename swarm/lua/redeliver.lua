-- The redelivery pass for one role: puts back the queue messages the broker lost.
--
-- The caller observed the broker in one atomic step at `seen_ms` (Redis server time): the
-- messages waiting in the role's queues (`queued`). Every item in the sent set sent at or before
-- `seen_ms` had a message pushed by then. Each such message was, at `seen_ms`, still queued,
-- taken by a consumer on its way to a claim, or consumed; a consumed message claims an owed item,
-- which leaves the set, unless its consumer died first: the loss this pass exists for. So
--   missing = owed items sent by seen_ms - queued
-- counts the lost messages, plus the few on their way from a pop to a claim at that instant;
-- duplicates and surplus messages only lower it.
--
-- It sends min(missing, ARGV[7]) messages, naming the role's most urgent owed items. Which items
-- they name does not matter: any message of a role claims the role's most urgent owed item
-- (claim_delivery.lua), so the lost message's item is claimed by the role's next message, and
-- the new ones only restore the count. Callers pass as the limit the least shortfall their
-- passes saw over the in-flight window, so a message on its way to a claim is not taken for a
-- lost one (a loss persists; a pop is over in moments), and a re-send holds off other passes
-- for the role for ARGV[6] ms (one pass interval), by which time the new messages are in the
-- queue for them to count.
-- ARGV: [3] role, [4] seen_ms, [5] queued, [6] hold ms, [7] limit.
-- Returns { 'ok', missing, flat list }: id, fence or '', type, role, priority and traceparent
-- or '' of each item to send.
local role, seen_ms, queued = ARGV[3], tonumber(ARGV[4]), tonumber(ARGV[5])
local sent = SENT_KEY[role]
local owed = 0
for rank = 0, 3 do
  local base = rank * SENT_RANK_SPAN
  owed = owed + redis.call('ZCOUNT', sent, fmt(base), fmt(base + seen_ms))
end
local missing = owed - queued
local take = math.min(missing, tonumber(ARGV[7]))
local out = {}
if take <= 0 then
  return { 'ok', missing, out }
end
local now = ms(now_us())
local hold = 'redeliver_hold_ms:' .. role
local until_ms = tonumber(redis.call('HGET', METRICS, hold) or '0')
if until_ms > now then
  return { 'ok', missing, out } -- another pass re-sent moments ago: its messages are on the way
end
redis.call('HSET', METRICS, hold, fmt(now + tonumber(ARGV[6])))
for _, id in ipairs(redis.call('ZRANGE', sent, 0, take - 1)) do
  local f = redis.call('HMGET', ITEM_PREFIX .. id, 'status', 'fence', 'type', 'role', 'priority',
    'traceparent', 'trace_id')
  if f[1] == 'pending' then
    for _, v in ipairs({ id, f[2] or '', f[3], f[4], f[5], f[6] or '' }) do
      out[#out + 1] = v
    end
    emit('redelivered', id, '', f[2], f[7], 'pending', 'a queue message of its role was lost; sent another')
  else
    redis.call('ZREM', sent, id) -- a damaged registry: only pending items are owed
  end
end
if #out > 0 then
  redis.call('HINCRBY', METRICS, 'redelivered:' .. role, #out / 6)
  redis.call('HSET', METRICS, 'last_redeliver_ms:' .. role, fmt(now))
end
return { 'ok', missing, out }
