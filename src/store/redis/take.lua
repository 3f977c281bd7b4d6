-- First half of a rotation (cycle_id): applies one request's changes to a
-- session record and takes it out, only if it still exists. The second half
-- creates the record under the new id (create.lua); the new id is known to
-- no one before that, so nothing can see the session in between.
-- KEYS[1] and ARGV as in update.lua (ARGV[1], the TTL, is unused).
-- Returns 0 when the record is gone (nothing written), 2 when the merged
-- record had no session key left (it is deleted), else the merged record's
-- fields and values, flat, without the version field (the key is deleted).
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
redis.call('HDEL', key, ARGV[2])
local fields = redis.call('HGETALL', key)
redis.call('DEL', key)
if #fields == 0 then
  return 2
end
return fields
