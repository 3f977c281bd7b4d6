-- Creates a session record, never overwriting one.
-- KEYS[1]  the session's hash
-- ARGV[1]  time to live, in milliseconds
-- ARGV[2]  the version field, ARGV[3] its value
-- ARGV[4..] field, value, field, value, ...
-- Returns 1 when created, 0 when the key already exists.
local key = KEYS[1]
if redis.call('EXISTS', key) == 1 then
  return 0
end
redis.call('HSET', key, ARGV[2], ARGV[3])
for i = 4, #ARGV - 1, 2 do
  redis.call('HSET', key, ARGV[i], ARGV[i + 1])
end
redis.call('PEXPIRE', key, ARGV[1])
return 1
