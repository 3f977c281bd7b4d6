-- Single node: a whole rotation (cycle_id) in one step. Applies one
-- request's changes to the old record, moves it to the new key and the
-- index along, only if the old record exists; so a rotation and the end of
-- the user's sessions never interleave.
-- KEYS[1]  the old record, KEYS[2] the new one; KEYS[3] the new index, when
--          ARGV[1] is 'to'
-- ARGV[1]  'keep' (the binding is unchanged), 'none' (unbound) or 'to'
-- ARGV[2]  the old handle, ARGV[3] the new handle, ARGV[4] the cap
-- ARGV[5]  the key prefix; ARGV[6..] as update.lua's ARGV
-- Returns {-1} when the new key exists (nothing done), {0} when the old
-- record is gone, {2} when the merged record was empty (the old one is
-- deleted), else {1, sessions ended by the cap}.
local old, new = KEYS[1], KEYS[2]
local B = 6
if redis.call('EXISTS', new) == 1 then
  return { -1 }
end
if redis.call('HEXISTS', old, ARGV[B + 1]) == 0 then
  return { 0 }
end
local was = redis.call('HGET', old, INDEX_FIELD)
apply(old, B)
redis.call('HDEL', old, ARGV[B + 1], INDEX_FIELD)
local fields = redis.call('HGETALL', old)
redis.call('DEL', old)
if was then
  redis.call('ZREM', was, ARGV[2])
end
if #fields == 0 then
  return { 2 }
end
redis.call('HSET', new, ARGV[B + 1], ARGV[B + 2])
for i = 1, #fields - 1, 2 do
  redis.call('HSET', new, fields[i], fields[i + 1])
end
local dest = nil
if ARGV[1] == 'to' then
  dest = KEYS[3]
elseif ARGV[1] == 'keep' and was then
  dest = was
end
if dest then
  redis.call('HSET', new, INDEX_FIELD, dest)
end
redis.call('PEXPIRE', new, ARGV[B])
if not dest then
  return { 1, 0 }
end
return { 1, adopt(dest, '', ARGV[3], tonumber(ARGV[4]), ARGV[5]) }
