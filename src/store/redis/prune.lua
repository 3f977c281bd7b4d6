-- Cluster: drops members a listing found gone, each only if it still has
-- the score the listing saw (it was not listed again meanwhile).
-- KEYS[1]  the user's index
-- ARGV     handle, score, handle, score, ...
-- Returns how many were dropped.
local index = KEYS[1]
local dropped = 0
for i = 1, #ARGV - 1, 2 do
  local s = redis.call('ZSCORE', index, ARGV[i])
  if s and tonumber(s) == tonumber(ARGV[i + 1]) then
    redis.call('ZREM', index, ARGV[i])
    dropped = dropped + 1
  end
end
return dropped
