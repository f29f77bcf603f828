-- The holder finishes its item: complete (success) or fail. A retryable failure goes back to
-- pending with attempts + 1, or dead once attempts reach max_attempts.
-- Velocity is added here, inside the same step that leaves 'claimed', so it is counted once.
-- ARGV: [3] id, [4] agent, [5] fence or '', [6] outcome 'completed'|'failed',
--       [7] result JSON or '', [8] error or '', [9] points override or '', [10] retry '1'|'0',
--       [11] the item's artifacts as a JSON object, or '' to leave them (completion only),
--       [12] a handoff's new item id or '', [13] its role, [14] its stage, [15] its loop count,
--       [16] a retry's backoff in ms: a sweeper sends it again that long from now.
-- A handoff creates the workflow's next-stage item in this same step, so it happens exactly
-- once; velocity then waits for the workflow's last stage, so a feature counts once.
local id, agent = ARGV[3], ARGV[4]
local outcome = ARGV[6]
local refused = check_holder(id, agent, ARGV[5], outcome == 'completed' and 'complete' or 'fail')
if refused then
  return refused
end
local now = now_us()
local ik = ITEM_PREFIX .. id
local f = redis.call('HMGET', ik, 'status', 'fence', 'trace_id', 'team', 'points', 'claimed_at',
  'attempts', 'max_attempts', 'cancel_requested', 'role')
local st, fence, trace, team = f[1], f[2], f[3], f[4]
drop_claim(ik, id)
local to = outcome
if outcome == 'completed' then
  local points = ARGV[9] ~= '' and ARGV[9] or f[5]
  redis.call('HSET', ik, 'status', 'completed', 'progress', 100, 'points', points,
    'completed_at', fmt(now), 'updated_at', fmt(now))
  if ARGV[7] ~= '' then
    redis.call('HSET', ik, 'result', ARGV[7])
  end
  if ARGV[11] ~= '' then
    redis.call('HSET', ik, 'artifacts', ARGV[11])
  end
  if ARGV[12] ~= '' then
    hand_off(ik, id, ARGV[12], ARGV[13], ARGV[14], ARGV[15], now)
  elseif tonumber(points) > 0 then
    redis.call('HINCRBY', VELOCITY, team, points)
  end
else
  redis.call('HSET', ik, 'error', ARGV[8], 'updated_at', fmt(now))
  if ARGV[10] == '1' then
    local attempts = tonumber(f[7]) + 1
    redis.call('HSET', ik, 'attempts', attempts)
    if f[9] == '1' then
      to = 'cancelled'
    elseif attempts >= tonumber(f[8]) then
      to = 'dead'
    else
      to = 'pending'
    end
  end
  if to == 'pending' then
    local retry_at = ms(now) + (tonumber(ARGV[16]) or 0)
    redis.call('HSET', ik, 'retry_at', fmt(retry_at)) -- no queue message claims it earlier
    back_to_pending(ik, id, now, retry_at)
  else
    redis.call('HSET', ik, 'status', to, 'completed_at', fmt(now))
  end
end
move(id, st, to, now)
-- The agent's live metrics: counts and the total time from claim to finish.
local ak = AGENT_PREFIX .. agent
redis.call('HINCRBY', ak, outcome == 'completed' and 'completed' or 'failed', 1)
redis.call('HINCRBY', ak, 'duration_total_us', now - tonumber(f[6]))
-- Metrics: the outcome by role and team, and the work's duration (claimed_at to now).
redis.call('HINCRBY', METRICS, outcome .. ':' .. f[10] .. ':' .. team, 1)
observe('duration', f[10] .. ':' .. outcome, now - tonumber(f[6]), DURATION_BUCKETS_US)
redis.call('HSET', ak, 'status', 'idle', 'last_heartbeat', fmt(now))
redis.call('ZADD', AGENTS, ms(now), agent)
emit(outcome, id, agent, fence, trace, to, outcome == 'failed' and ARGV[8] or '')
if to == 'dead' or to == 'cancelled' then
  emit(to, id, agent, fence, trace, to, '')
end
return ok_item(ik)
