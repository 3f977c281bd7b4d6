-- An update whose changes bind the record to a user, or unbind it: applies
-- them as update.lua does, and names the new index in the record. On a
-- single node (ARGV[4] '1') it also moves the record between
-- the indexes; on a cluster the caller lists it (see users.rs).
-- KEYS[1]  the record; KEYS[2] the new index, on a single node
-- ARGV[1]  the new index, or '' when unbound; ARGV[2] the record's handle
-- ARGV[3]  the cap; ARGV[4] '1' on a single node, '0' on a cluster;
--          ARGV[5] the key prefix
-- ARGV[6..] as update.lua's ARGV
-- Returns {status, the index it was in or '', sessions ended by the cap};
-- status 0 when gone (nothing written), 1 written, 2 emptied and deleted.
local key, handle, single = KEYS[1], ARGV[2], ARGV[4] == '1'
local B = 6
if redis.call('HEXISTS', key, ARGV[B + 1]) == 0 then
  return { 0, '', 0 }
end
local was = redis.call('HGET', key, INDEX_FIELD) or ''
apply(key, B)
redis.call('HDEL', key, INDEX_FIELD)
if redis.call('HLEN', key) <= 1 then
  redis.call('DEL', key)
  if single and was ~= '' then
    redis.call('ZREM', was, handle)
  end
  return { 2, was, 0 }
end
local dest = ARGV[1]
if dest ~= '' then
  redis.call('HSET', key, INDEX_FIELD, dest)
end
redis.call('PEXPIRE', key, ARGV[B])
local ended = 0
if single and was ~= dest then
  if was ~= '' then
    redis.call('ZREM', was, handle)
  end
  if dest ~= '' then
    ended = adopt(dest, '', handle, tonumber(ARGV[3]), ARGV[5])
  end
end
return { 1, was, ended }
