-- Cluster: the first step of ending a session (see users.rs). Takes the
-- handle out of the user's index and, if it was there, leaves a tombstone
-- in its place, so a rotation of that record still on its way cannot list
-- its new handle (adopt.lua refuses).
-- KEYS[1]  the user's index
-- ARGV[1]  the handle, ARGV[2] how long the tombstone lasts (microseconds)
-- Returns 1 when the handle was listed, else 0.
local index, handle = KEYS[1], ARGV[1]
local now = now_us()
local listed = redis.call('ZREM', index, handle)
if listed == 1 then
  redis.call('ZADD', index, score(now + tonumber(ARGV[2])), '~' .. handle)
end
sweep(index, now, false)
return listed
