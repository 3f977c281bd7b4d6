-- Single node: creates a record bound to a user and lists it in the user's
-- index, in one step; never overwrites a record.
-- KEYS[1]  the record, KEYS[2] the user's index
-- ARGV[1]  the record's handle, ARGV[2] the cap, ARGV[3] the key prefix
-- ARGV[4]  time to live (ms), ARGV[5] the version field, ARGV[6] its value
-- ARGV[7..] field, value, ...
-- Returns {0, 0} when the key exists, else {1, sessions ended by the cap}.
local key, index = KEYS[1], KEYS[2]
if redis.call('EXISTS', key) == 1 then
  return { 0, 0 }
end
redis.call('HSET', key, ARGV[5], ARGV[6])
for i = 7, #ARGV - 1, 2 do
  redis.call('HSET', key, ARGV[i], ARGV[i + 1])
end
redis.call('HSET', key, INDEX_FIELD, index)
redis.call('PEXPIRE', key, ARGV[4])
return { 1, adopt(index, '', ARGV[1], tonumber(ARGV[2]), ARGV[3]) }
