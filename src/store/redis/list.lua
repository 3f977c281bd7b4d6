-- Single node: a user's live records, in one step. Drops members whose
-- record is gone or names another index.
-- KEYS[1]  the user's index
-- ARGV[1]  the key prefix, ARGV[2..] the fields to read
-- Returns handle, PTTL, the fields' values ..., for each, oldest first.
local index, prefix = KEYS[1], ARGV[1]
local out = {}
for _, h in ipairs(sweep(index, now_us(), prefix)) do
  local key = prefix .. h
  out[#out + 1] = h
  out[#out + 1] = redis.call('PTTL', key)
  local values = redis.call('HMGET', key, unpack(ARGV, 2))
  for i = 1, #ARGV - 1 do
    out[#out + 1] = values[i]
  end
end
return out
