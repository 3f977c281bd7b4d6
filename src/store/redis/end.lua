-- Ends one of a user's sessions: deletes the record only if it is bound to
-- that user. On a single node (ARGV[3] '1') it also takes
-- the handle out of the user's index, unless the record is still listed
-- there; on a cluster the caller has done that first (unlist.lua).
-- KEYS[1]  the record; KEYS[2] the user's index, on a single node
-- ARGV[1]  the user field, ARGV[2] the user id's JSON, ARGV[3] '1' on a
--          single node, '0' on a cluster, ARGV[4] the handle
-- Returns 1 when the record was deleted, else 0.
local key = KEYS[1]
local bound = redis.call('HGET', key, ARGV[1]) == ARGV[2]
if bound then
  redis.call('DEL', key)
end
if ARGV[3] == '1' and redis.call('HGET', key, INDEX_FIELD) ~= KEYS[2] then
  redis.call('ZREM', KEYS[2], ARGV[4])
end
if bound then
  return 1
end
return 0
