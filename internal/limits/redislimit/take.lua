-- GCRA over several buckets, all or nothing (the virtual-scheduling form
-- used by go-redis/redis_rate and throttled/throttled). Times are in
-- microseconds, passed by the caller.
-- KEYS[i]: bucket i.  ARGV[1]: now.  ARGV[2+3(i-1)..]: interval, burst, cost.
-- Returns per bucket: allowed (0/1), retry_after, remaining, reset.
local now = tonumber(ARGV[1])
local out, tats = {}, {}
local all = true
for i = 1, #KEYS do
  local interval = tonumber(ARGV[3 * i - 1])
  local burst = tonumber(ARGV[3 * i])
  local cost = math.min(tonumber(ARGV[3 * i + 1]), burst)
  local tat = tonumber(redis.call('GET', KEYS[i])) or now
  if tat < now then tat = now end
  local new_tat = tat + interval * cost
  local diff = now - (new_tat - interval * burst)
  local j = 4 * (i - 1)
  if diff < 0 then
    all = false
    out[j + 1], out[j + 2], out[j + 3], out[j + 4] = 0, -diff, 0, tat - now
    tats[i] = false
  else
    out[j + 1], out[j + 2], out[j + 3], out[j + 4] = 1, 0, math.floor(diff / interval), new_tat - now
    tats[i] = new_tat
  end
end
if all then
  for i = 1, #KEYS do
    local ttl = math.max(1, math.ceil((tats[i] - now) / 1000))
    redis.call('SET', KEYS[i], string.format('%d', tats[i]), 'PX', ttl)
  end
end
return out
