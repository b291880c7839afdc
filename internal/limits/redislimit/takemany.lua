-- GCRA over several buckets, all or nothing, for several requests in turn
-- (the virtual-scheduling form used by go-redis/redis_rate and
-- throttled/throttled). Each request is decided as take.lua would decide
-- it alone, in the order given, and sees what the requests before it in
-- the same call charged. Times are in microseconds, passed by the caller.
-- ARGV[1]: the number of requests. Then per request: now, the number of
-- its buckets n, and per bucket interval, burst, cost. KEYS: every
-- request's bucket keys, in order.
-- Returns per bucket of every request, in order: allowed (0/1),
-- retry_after, remaining, reset.
local out = {}
local a, k = 2, 1
for _ = 1, tonumber(ARGV[1]) do
  local now = tonumber(ARGV[a])
  local n = tonumber(ARGV[a + 1])
  a = a + 2
  local tats = {}
  local all = true
  for i = 0, n - 1 do
    local interval = tonumber(ARGV[a])
    local burst = tonumber(ARGV[a + 1])
    local cost = math.min(tonumber(ARGV[a + 2]), burst)
    a = a + 3
    local tat = tonumber(redis.call('GET', KEYS[k + i])) or now
    if tat < now then tat = now end
    local new_tat = tat + interval * cost
    local diff = now - (new_tat - interval * burst)
    local j = #out
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
    for i = 0, n - 1 do
      local ttl = math.max(1, math.ceil((tats[i] - now) / 1000))
      redis.call('SET', KEYS[k + i], string.format('%d', tats[i]), 'PX', ttl)
    end
  end
  k = k + n
end
return out
