-- First half of a rotation (cycle_id) on a Redis Cluster: applies one
-- request's changes to a session record and takes it out, only if it still
-- exists. The second half creates the record under the new id
-- (create.lua); the new id is known to no one before that, so nothing can
-- see the session in between.
-- KEYS[1] and ARGV as in update.lua, except ARGV[1]: how long (ms) a record
-- listed in a user's index stays behind as a ghost: the same fields, no
-- version field, so nothing loads, updates or rotates it, but a listing of
-- its user still shows it and ending it deletes it, until the rotation has
-- listed the new record (see users.rs).
-- Returns 0 when the record is gone (nothing written), 2 when the merged
-- record had no session key left (it is deleted), else the index the record
-- was listed in ('' for none) followed by the merged record's fields and
-- values, flat, without the version and index fields.
local key = KEYS[1]
if redis.call('HEXISTS', key, ARGV[2]) == 0 then
  return 0
end
local was = redis.call('HGET', key, '\0u')
local ghost = nil
if was then
  ghost = redis.call('HGETALL', key)
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
redis.call('HDEL', key, ARGV[2], '\0u')
local fields = redis.call('HGETALL', key)
redis.call('DEL', key)
if #fields == 0 then
  return 2
end
if ghost then
  for i = 1, #ghost - 1, 2 do
    if ghost[i] ~= ARGV[2] then
      redis.call('HSET', key, ghost[i], ghost[i + 1])
    end
  end
  redis.call('PEXPIRE', key, ARGV[1])
end
table.insert(fields, 1, was or '')
return fields
