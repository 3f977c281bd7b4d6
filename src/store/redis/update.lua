-- Applies one request's changes to a session record, never resurrecting it.
-- KEYS[1]  the session's hash
-- ARGV[1]  time to live, in milliseconds
-- ARGV[2]  the version field, ARGV[3] its value
-- ARGV[4]  '1' when the request cleared the session first
-- ARGV[5]  n, the number of removed fields that follow
-- ARGV[6..5+n] removed fields
-- ARGV[6+n..]  field, value, field, value, ... for the keys the request set
-- Returns 1 when applied, 2 when the merged record had no session key left
-- (it is deleted), 0 (writing nothing) when the record is gone.
local key = KEYS[1]
if redis.call('HEXISTS', key, ARGV[2]) == 0 then
  return 0
end
if ARGV[4] == '1' then
  redis.call('DEL', key)
  redis.call('HSET', key, ARGV[2], ARGV[3])
end
local removed = tonumber(ARGV[5])
for i = 6, 5 + removed do
  redis.call('HDEL', key, ARGV[i])
end
for i = 6 + removed, #ARGV - 1, 2 do
  redis.call('HSET', key, ARGV[i], ARGV[i + 1])
end
-- Only the version field left: the merged record is empty.
if redis.call('HLEN', key) <= 1 then
  redis.call('DEL', key)
  return 2
end
redis.call('PEXPIRE', key, ARGV[1])
return 1
