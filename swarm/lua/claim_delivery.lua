-- A worker's claim for a queue message of a role. Any message of a role stands in for any item
-- the role is owed: it claims the role's most urgent, longest-owed sent item (the sent set's
-- order), which in the steady state is the message's own item. So a lost message delays no
-- item: the next message of its role claims it, and the redelivery pass only has to put the
-- number of messages right. The message's own item is claimed instead when it is not in the
-- sent set (e.g. a sweeper's send not yet taken) and more urgent than the set's head, or when
-- the set is empty.
-- Not claimed through a message: an item filed for manual claims, and one in a retry's backoff
-- (it is sent when the backoff ends).
-- The claim is idempotent per delivery (ARGV[7], the message's task id, or ''): the item it
-- claimed records it (`delivery`), and so does the message's own item when another was claimed
-- instead (`stood_in`, '<delivery>:<id>'). The same delivery by the same agent within the lease
-- (a claim whose reply was lost, re-sent by the client or retried by the worker) gets the item
-- it already claimed back, rather than a second one.
-- ARGV: [3] id, [4] agent, [5] lease ms, [6] the message's role, [7] delivery id or ''.
-- Returns claim.lua's replies; with nothing to claim, the message's own item's refusal.
local id, agent, lease_ms, role, delivery = ARGV[3], ARGV[4], tonumber(ARGV[5]), ARGV[6], ARGV[7]
local now = now_us()
local sent = SENT_KEY[role]
local ik = ITEM_PREFIX .. id
local f = redis.call('HMGET', ik, 'status', 'manual', 'retry_at', 'priority', 'stood_in')
if not sent then
  return { 'err', 'not_found', id }
end

local function claimed_by_this_delivery(cid)
  local c = redis.call('HMGET', ITEM_PREFIX .. cid, 'delivery', 'status', 'agent_id', 'claimed_at')
  return c[1] == delivery and HELD[c[2]] and c[3] == agent and now - tonumber(c[4]) < lease_ms * 1000
end

local function claim(cid)
  local reply = do_claim(cid, agent, lease_ms, now)
  if reply[1] == 'ok' and delivery ~= '' then
    redis.call('HSET', ITEM_PREFIX .. cid, 'delivery', delivery)
    if cid ~= id then
      if f[1] then -- never creates a hash for an item that does not exist
        redis.call('HSET', ik, 'stood_in', delivery .. ':' .. cid)
      end
      reply = ok_item(ITEM_PREFIX .. cid)
    else
      reply = ok_item(ik)
    end
  end
  return reply
end

if delivery ~= '' then
  if claimed_by_this_delivery(id) then
    return ok_item(ik)
  end
  local prefix = delivery .. ':'
  if f[5] and string.sub(f[5], 1, #prefix) == prefix then
    local other = string.sub(f[5], #prefix + 1)
    if claimed_by_this_delivery(other) then
      return ok_item(ITEM_PREFIX .. other)
    end
  end
end

local refusal = nil
if not f[1] then
  refusal = { 'err', 'not_found', id } -- e.g. expired: the message still stands in for another
elseif f[1] ~= 'pending' then
  refusal = { 'err', 'transition', id, f[1], 'claim' }
  if HELD[f[1]] then
    refusal = do_claim(id, agent, lease_ms, now) -- names the holder
  end
elseif f[2] == '1' then
  refusal = { 'err', 'transition', id, 'pending', 'claim from a queue message (it is filed for manual claims)' }
elseif f[3] and tonumber(f[3]) > ms(now) then
  refusal = { 'err', 'transition', id, 'pending', 'claim during its retry backoff' }
end
local head = redis.call('ZRANGE', sent, 0, 0, 'WITHSCORES')
if not refusal and not redis.call('ZSCORE', sent, id) then
  if #head == 0 or RANK[f[4]] < math.floor(tonumber(head[2]) / SENT_RANK_SPAN) then
    return claim(id)
  end
end
for _ = 1, 16 do
  if #head == 0 then
    break
  end
  local reply = claim(head[1])
  if reply[1] == 'ok' then
    return reply
  end
  redis.call('ZREM', sent, head[1]) -- only pending items are owed; guards a damaged registry
  head = redis.call('ZRANGE', sent, 0, 0, 'WITHSCORES')
end
if not refusal then
  return claim(id)
end
return refusal
