-- Shared prelude, prepended to every ledger script when it is loaded.
--
-- KEYS are the same for every script (Keys.script_keys() builds them, in this order), so the
-- scripts never build a key themselves: ids are appended to the prefixes Keys hands over, and
-- every key carries the namespace hash tag, so all of them live in one Redis Cluster slot.
-- ARGV[1] is the event stream's approximate cap and ARGV[2] the dispatch grace (ms, see
-- make_ready); each script's own arguments follow.
local ITEM_PREFIX, CLAIM_PREFIX, AGENT_PREFIX = KEYS[1], KEYS[2], KEYS[3]
local FENCE, LEASES, EVENTS, VELOCITY, AGENTS = KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8]
local STATUS_KEY = {
  pending = KEYS[9], claimed = KEYS[10], in_progress = KEYS[11], completed = KEYS[12],
  failed = KEYS[13], cancelled = KEYS[14], dead = KEYS[15],
}
local READY_KEY = { pm = KEYS[16], architect = KEYS[17], developer = KEYS[18], qa = KEYS[19], devops = KEYS[20] }
local OUTBOX = KEYS[21]
local METRICS = KEYS[22]
local SENT_KEY = { pm = KEYS[23], architect = KEYS[24], developer = KEYS[25], qa = KEYS[26], devops = KEYS[27] }
-- A sent set's score is rank * SENT_RANK_SPAN + the send time (ms): most urgent, then longest
-- owed, first. 2^42 ms is about 139 years; the largest score stays below 2^53 (exact in Lua).
local SENT_RANK_SPAN = 4398046511104
local EVENTS_MAX_LEN, DISPATCH_GRACE_MS = ARGV[1], tonumber(ARGV[2])
local RANK = { critical = 0, high = 1, medium = 2, low = 3 }
local TERMINAL = { completed = true, failed = true, cancelled = true, dead = true }
local HELD = { claimed = true, in_progress = true }

-- The metrics hash (swarm/metrics.py reads it): exact counters and histogram buckets, moved in
-- the same atomic step as the transition they count. Bucket upper bounds are in microseconds;
-- the field names them ('inf' past the last), and each observation adds 1 to exactly one bucket
-- (the collector makes them cumulative) and its value to the sum: O(1) per operation.
-- swarm/metrics.py holds the same lists (a unit test checks that they agree).
local DURATION_BUCKETS_US = { 100000, 500000, 1000000, 2500000, 5000000, 10000000, 30000000, 60000000,
  120000000, 300000000, 600000000, 1800000000, 3600000000 }
local LATENCY_BUCKETS_US = { 5000, 10000, 25000, 50000, 100000, 250000, 500000, 1000000, 2500000,
  5000000, 10000000, 30000000, 60000000, 300000000 }

-- Times come from the Redis server clock, so every host agrees on them.
-- Microseconds since the epoch fit a Lua double exactly (< 2^53); '%.0f' avoids 1e+15 notation.
local function now_us()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000000 + tonumber(t[2])
end

local function fmt(n)
  return string.format('%.0f', n)
end

local function ms(us)
  return math.floor(us / 1000)
end

-- One histogram observation of `us` microseconds under `name` and `labels` (see above).
local function observe(name, labels, us, bounds)
  if us < 0 then
    us = 0
  end
  local le = 'inf'
  for i = 1, #bounds do
    if us <= bounds[i] then
      le = fmt(bounds[i])
      break
    end
  end
  redis.call('HINCRBY', METRICS, name .. '_bucket:' .. labels .. ':' .. le, 1)
  redis.call('HINCRBY', METRICS, name .. '_sum_us:' .. labels, fmt(us))
end

-- Appends one event to the capped stream; empty fields are left out.
local function emit(event, id, agent, fence, trace, status, detail)
  local entry = { 'event', event }
  local function add(k, v)
    if v and v ~= '' then
      entry[#entry + 1] = k
      entry[#entry + 1] = tostring(v)
    end
  end
  add('work_id', id)
  add('agent_id', agent)
  add('fence', fence)
  add('trace_id', trace)
  add('status', status)
  add('detail', detail)
  redis.call('XADD', EVENTS, 'MAXLEN', '~', EVENTS_MAX_LEN, '*', unpack(entry))
end

-- Moves an item between status registries (one sorted set per status, scored by update time).
local function move(id, from, to, now)
  if from then
    redis.call('ZREM', STATUS_KEY[from], id)
  end
  redis.call('ZADD', STATUS_KEY[to], ms(now), id)
end

-- Delivery (README, "Delivery owed until the claim"). A pending item that goes through the
-- queues is owed a delivery until an agent claims it. Two structures say how:
-- - the outbox: owed a send that is not known to be made (scored by when a sweeper should make
--   it: after the writer's grace, at the end of a retry's backoff, or at once);
-- - its role's sent set (by priority, then when the send was decided; ZADD NX, so a re-send or
--   a late confirmation keeps its place): a message is, or is about to be, in the queue. A
--   message of the role claims from it (claim_delivery.lua) and the redelivery pass
--   (redeliver.lua) counts it.
-- An item the writer sends at once is in both until the send is confirmed; one a sweeper takes
-- (dispatch_due.lua) joins the sent set then. A claim takes it out of both.
local function mark_sent(id, role, priority, now)
  redis.call('ZADD', SENT_KEY[role], 'NX', RANK[priority] * SENT_RANK_SPAN + ms(now), id)
end

-- A pending item is ready for its role and owed a message. `due_ms` nil means the writer sends
-- it now (a sweeper steps in only if that send is not confirmed within the grace); false, or an
-- item filed for manual claims, keeps it out of the queues.
local function make_ready(ik, id, now, due_ms)
  local f = redis.call('HMGET', ik, 'role', 'priority', 'manual')
  redis.call('ZADD', READY_KEY[f[1]], RANK[f[2]], id)
  redis.call('ZREM', SENT_KEY[f[1]], id)
  if due_ms == false or f[3] == '1' then
    return
  end
  redis.call('ZADD', OUTBOX, due_ms or (ms(now) + DISPATCH_GRACE_MS), id)
  if due_ms == nil then
    mark_sent(id, f[1], f[2], now)
  end
end

-- Returns a held item to pending: a fresh start for the next claimer, with the last holder
-- remembered so that its late writes are told they lost the lease.
-- `due_ms` is when a sweeper sends its message (nil: the caller sends it now).
local function back_to_pending(ik, id, now, due_ms)
  local last = redis.call('HGET', ik, 'agent_id')
  redis.call('HDEL', ik, 'agent_id')
  redis.call('HSET', ik, 'status', 'pending', 'progress', 0, 'note', '', 'last_agent', last or '')
  make_ready(ik, id, now, due_ms)
end

local function unready(ik, id)
  local role = redis.call('HGET', ik, 'role')
  redis.call('ZREM', READY_KEY[role], id)
  redis.call('ZREM', SENT_KEY[role], id)
  redis.call('ZREM', OUTBOX, id)
end

local function ok_item(ik)
  return { 'ok', redis.call('HGETALL', ik) }
end

-- Touches the agent's record: it exists from its first claim on, even if never registered.
local function touch_agent(agent, role, team, now, status)
  local ak = AGENT_PREFIX .. agent
  if redis.call('EXISTS', ak) == 0 then
    redis.call('HSET', ak, 'id', agent, 'role', role, 'team', team, 'capacity', 1,
      'completed', 0, 'failed', 0, 'duration_total_us', 0)
  end
  redis.call('HSET', ak, 'status', status, 'last_heartbeat', fmt(now))
  redis.call('ZADD', AGENTS, ms(now), agent)
end

-- The claim itself: SET NX PX on the item's claim key, then a fencing token from INCR.
-- Only a pending item is claimable; a held one names its holder.
local function do_claim(id, agent, lease_ms, now)
  local ik = ITEM_PREFIX .. id
  local f = redis.call('HMGET', ik, 'status', 'agent_id', 'role', 'team', 'trace_id', 'created_at')
  local st = f[1]
  if not st then
    return { 'err', 'not_found', id }
  end
  if HELD[st] then
    local live = redis.call('EXISTS', CLAIM_PREFIX .. id) == 1
    return { 'err', 'conflict', id, f[2] or '', live and 'live' or 'expired' }
  end
  if st ~= 'pending' then
    return { 'err', 'transition', id, st, 'claim' }
  end
  local ck = CLAIM_PREFIX .. id
  if not redis.call('SET', ck, agent, 'NX', 'PX', lease_ms) then
    return { 'err', 'conflict', id, redis.call('GET', ck) or '', 'live' }
  end
  local fence = redis.call('INCR', FENCE)
  local expires = now + lease_ms * 1000
  redis.call('HSET', ik, 'status', 'claimed', 'agent_id', agent, 'fence', fence,
    'claimed_at', fmt(now), 'updated_at', fmt(now), 'lease_expires_at', fmt(expires), 'lease_ms', lease_ms)
  redis.call('HDEL', ik, 'delivery', 'stood_in') -- claim_delivery.lua sets them for its own claims
  redis.call('ZREM', READY_KEY[f[3]], id)
  redis.call('ZREM', SENT_KEY[f[3]], id)
  redis.call('ZREM', OUTBOX, id)
  move(id, 'pending', 'claimed', now)
  redis.call('ZADD', LEASES, ms(expires), id)
  touch_agent(agent, f[3], f[4], now, 'active')
  -- Metrics: the claim, its wait in the queue since submission, and the role's last claim.
  redis.call('HINCRBY', METRICS, 'claimed:' .. f[3] .. ':' .. f[4], 1)
  observe('claim_latency', f[3], now - (tonumber(f[6]) or now), LATENCY_BUCKETS_US)
  redis.call('HSET', METRICS, 'last_claim_ms:' .. f[3], fmt(ms(now)))
  emit('claimed', id, agent, fence, f[5], 'claimed', '')
  return ok_item(ik)
end

-- Checks that `agent` (with `fence`, when given) holds the item's live lease.
-- Returns nil when it does, else the error reply. The current claimer whose lease ran out, or
-- who shows a token other than its claim's, has lost its lease; so has a caller showing a token
-- older than the current one (a newer claim superseded it), and the last holder of an item that
-- went back to pending. Anyone else is simply not the owner.
local function check_holder(id, agent, fence, op)
  local ik = ITEM_PREFIX .. id
  local f = redis.call('HMGET', ik, 'status', 'agent_id', 'fence', 'last_agent')
  local st, owner, cur = f[1], f[2], tonumber(f[3])
  if not st then
    return { 'err', 'not_found', id }
  end
  if TERMINAL[st] then
    return { 'err', 'transition', id, st, op }
  end
  local given = tonumber(fence)
  if st == 'pending' then
    if given ~= nil and cur ~= nil and given <= cur and agent == f[4] then
      return { 'err', 'lease_lost', id, 'its lease ended and the item went back to pending' }
    end
    return { 'err', 'not_owner', id, '', 'it is not claimed' }
  end
  local live = redis.call('EXISTS', CLAIM_PREFIX .. id) == 1
  if agent == owner then
    if given ~= nil and given < cur then
      return { 'err', 'lease_lost', id, 'a newer claim (fence ' .. cur .. ') superseded it' }
    end
    if given ~= nil and given > cur then
      return { 'err', 'lease_lost', id, 'fence ' .. given .. ' is not the current claim (fence ' .. cur .. ')' }
    end
    if not live then
      return { 'err', 'lease_lost', id, 'its lease expired' }
    end
    return nil
  end
  if given ~= nil and given < cur then
    return { 'err', 'lease_lost', id, 'a newer claim (fence ' .. cur .. ') superseded it' }
  end
  if live then
    return { 'err', 'not_owner', id, owner, '' }
  end
  return { 'err', 'not_owner', id, '', 'the lease of ' .. owner .. ' expired; the reaper will return it to pending' }
end

-- Renews the holder's lease: the claim key's PX and the lease registry move together.
-- Without an explicit length it renews for the length the claim was taken with.
local function renew(id, lease_ms, now)
  lease_ms = tonumber(lease_ms) or tonumber(redis.call('HGET', ITEM_PREFIX .. id, 'lease_ms'))
  local expires = now + lease_ms * 1000
  redis.call('PEXPIRE', CLAIM_PREFIX .. id, lease_ms)
  redis.call('ZADD', LEASES, ms(expires), id)
  redis.call('HSET', ITEM_PREFIX .. id, 'lease_expires_at', fmt(expires))
end

-- Ends a holder's tenure: drops the claim and the lease. The last fence stays on the item so a
-- stale holder can still be told that it lost its lease; agent_id stays on a finished item (who
-- did it) and is cleared by callers that return the item to pending.
local function drop_claim(ik, id)
  redis.call('DEL', CLAIM_PREFIX .. id)
  redis.call('ZREM', LEASES, id)
  redis.call('HDEL', ik, 'lease_expires_at')
end

-- Creates a workflow's next-stage item from a completed one: same work, trace and team, the
-- stage's role, the artifacts so far, and parent_id linking the chain.
local function hand_off(parent_ik, parent_id, child_id, role, stage, loops, now)
  local p = redis.call('HMGET', parent_ik, 'type', 'description', 'payload', 'team', 'priority',
    'points', 'max_attempts', 'trace_id', 'workflow', 'artifacts', 'base_max_attempts')
  local cik = ITEM_PREFIX .. child_id
  -- The work's own attempt budget, not the one a handler gave this stage (set_options.lua).
  redis.call('HSET', cik, 'id', child_id, 'type', p[1], 'description', p[2], 'payload', p[3],
    'role', role, 'team', p[4], 'priority', p[5], 'points', p[6], 'max_attempts', p[11] or p[7],
    'trace_id', p[8], 'stage', stage, 'artifacts', p[10] or '{}',
    'parent_id', parent_id, 'loops', loops, 'status', 'pending', 'progress', 0, 'attempts', 0,
    'created_at', fmt(now), 'updated_at', fmt(now))
  if p[9] then -- a handoff outside a workflow (Ledger.complete with a Handoff) has none
    redis.call('HSET', cik, 'workflow', p[9])
  end
  local traceparent = redis.call('HGET', parent_ik, 'traceparent') -- the trace's submit span
  if traceparent then
    redis.call('HSET', cik, 'traceparent', traceparent)
  end
  move(child_id, nil, 'pending', now)
  make_ready(cik, child_id, now)
  redis.call('HSET', parent_ik, 'next_id', child_id)
  emit('submitted', child_id, '', nil, p[8], 'pending', 'handoff from ' .. parent_id)
end
