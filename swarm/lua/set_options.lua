-- The holder gives its claim its handler's options (workers/handlers.py): a lease length, which
-- renews the lease now and is what every later heartbeat and progress report renews it for, and
-- an attempt budget, which the retry, the reaper and the dead-letter rule then count against.
-- The item's own budget is kept (base_max_attempts) for the stages a workflow hands it on to.
-- ARGV: [3] id, [4] agent, [5] fence or '', [6] lease ms or '', [7] max_attempts or ''.
local id, agent = ARGV[3], ARGV[4]
local refused = check_holder(id, agent, ARGV[5], 'set options of')
if refused then
  return refused
end
local ik = ITEM_PREFIX .. id
if ARGV[6] ~= '' then
  redis.call('HSET', ik, 'lease_ms', ARGV[6])
  renew(id, ARGV[6], now_us())
end
if ARGV[7] ~= '' then
  redis.call('HSETNX', ik, 'base_max_attempts', redis.call('HGET', ik, 'max_attempts'))
  redis.call('HSET', ik, 'max_attempts', ARGV[7])
end
return ok_item(ik)
