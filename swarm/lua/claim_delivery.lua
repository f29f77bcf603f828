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
-- Only items of the types the claimer has handlers for are claimed (ARGV[8..]; none, or '*',
-- means any type): an item no handler here can run is left untouched, still owed, for a worker
-- that has one. Nor is an item of another role than the message's (a misrouted message) claimed.
-- ARGV: [3] id, [4] agent, [5] lease ms, [6] the message's role, [7] delivery id or '',
--       [8..] the work types the claimer handles (none, or '*': any).
-- Returns claim.lua's replies; with nothing to claim, the message's own item's refusal:
-- 'misrouted' (its role, priority and type, the message's role) or 'unhandled' (its type, the role)
-- besides claim.lua's.
local id, agent, lease_ms, role, delivery = ARGV[3], ARGV[4], tonumber(ARGV[5]), ARGV[6], ARGV[7]
local now = now_us()
local sent = SENT_KEY[role]
local ik = ITEM_PREFIX .. id
local f = redis.call('HMGET', ik, 'status', 'manual', 'retry_at', 'priority', 'stood_in', 'role', 'type')
if not sent then
  return { 'err', 'not_found', id }
end
local SCAN = 32 -- owed items looked at for one the claimer handles (and damaged entries dropped)
local handled = nil -- nil: any type
if #ARGV >= 8 and ARGV[8] ~= '*' then
  handled = {}
  for i = 8, #ARGV do
    handled[ARGV[i]] = true
  end
end

local function handles(cid, ctype)
  if not handled then
    return true
  end
  ctype = ctype or redis.call('HGET', ITEM_PREFIX .. cid, 'type')
  return ctype and handled[ctype] == true
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
elseif f[6] ~= role then
  refusal = { 'err', 'misrouted', id, f[6] or '', f[4] or '', f[7] or '', role }
elseif not handles(id, f[7]) then
  refusal = { 'err', 'unhandled', id, f[7] or '', role }
end
local owed = redis.call('ZRANGE', sent, 0, SCAN - 1, 'WITHSCORES')
if not refusal and not redis.call('ZSCORE', sent, id) then
  if #owed == 0 or RANK[f[4]] < math.floor(tonumber(owed[2]) / SENT_RANK_SPAN) then
    return claim(id)
  end
end
for i = 1, #owed, 2 do
  if handles(owed[i]) then
    local reply = claim(owed[i])
    if reply[1] == 'ok' then
      return reply
    end
    redis.call('ZREM', sent, owed[i]) -- only pending items are owed; guards a damaged registry
  end
end
if not refusal then
  return claim(id)
end
return refusal
