-- Distinct-patient budgets, all or nothing: one sorted set per budget,
-- member = patient digest, score = last touch (microseconds). Members at or
-- before now - window are dropped first, so the set is an exact sliding
-- window and never holds more than count members.
-- KEYS[i]: budget i.  ARGV[1]: now.  ARGV[2]: n budgets.
-- ARGV[3+2(i-1)..]: count, window.  ARGV[3+2n..]: patients (distinct).
-- Returns per budget: allowed (0/1), retry_after, remaining.
local now = tonumber(ARGV[1])
local n = tonumber(ARGV[2])
local first = 3 + 2 * n
local out = {}
local all = true
for i = 1, n do
  local count = tonumber(ARGV[1 + 2 * i])
  local window = tonumber(ARGV[2 + 2 * i])
  redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', now - window)
  local size = redis.call('ZCARD', KEYS[i])
  local fresh = 0
  for p = first, #ARGV do
    if not redis.call('ZSCORE', KEYS[i], ARGV[p]) then fresh = fresh + 1 end
  end
  local j = 3 * (i - 1)
  if size + fresh <= count then
    out[j + 1], out[j + 2], out[j + 3] = 1, 0, count - size - fresh
  elseif fresh > count then
    all = false
    out[j + 1], out[j + 2], out[j + 3] = 0, window, 0
  else
    all = false
    local oldest = redis.call('ZRANGE', KEYS[i], 0, 0, 'WITHSCORES')
    out[j + 1], out[j + 2], out[j + 3] = 0, tonumber(oldest[2]) + window - now, 0
  end
end
if all then
  for i = 1, n do
    local window = tonumber(ARGV[2 + 2 * i])
    for p = first, #ARGV, 200 do
      local args = {}
      for q = p, math.min(p + 199, #ARGV) do
        args[#args + 1] = ARGV[1]
        args[#args + 1] = ARGV[q]
      end
      redis.call('ZADD', KEYS[i], unpack(args))
    end
    redis.call('PEXPIRE', KEYS[i], math.ceil(window / 1000))
  end
end
return out
