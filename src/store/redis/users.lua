-- Shared by the scripts that keep a user's index; prepended to each of them.
--
-- A user's index is one sorted set. Its members are the handles of the
-- user's records (64 hex digits), scored by when they were indexed (server
-- time, microseconds). On a Redis Cluster it also holds tombstones,
-- '~' .. handle, scored by when they lapse (see users.rs). A record names
-- the index that lists it in its reserved field '\0u'.
if redis.replicate_commands then
  redis.replicate_commands()
end
local INDEX_FIELD = '\0u'

local function now_us()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000000 + tonumber(t[2])
end

-- Scores are sent as integers: Lua would print 1.7e15 as '1.7e+15'.
local function score(n)
  return string.format('%.0f', n)
end

-- Drops lapsed tombstones and, when `prefix` is a string (a single node,
-- where a script may read any key; false on a cluster), members whose record is gone or names another
-- index. Returns the members left, oldest first.
local function sweep(index, now, prefix)
  local all = redis.call('ZRANGE', index, 0, -1, 'WITHSCORES')
  local live = {}
  for i = 1, #all, 2 do
    local m = all[i]
    if string.byte(m, 1) == 126 then
      if tonumber(all[i + 1]) <= now then
        redis.call('ZREM', index, m)
      end
    elseif prefix and redis.call('HGET', prefix .. m, INDEX_FIELD) ~= index then
      redis.call('ZREM', index, m)
    else
      live[#live + 1] = m
    end
  end
  return live
end

-- Lists `new` in `index` in place of `old` (either may be ''), unless a
-- tombstone names either. Then, beyond `cap` members, a single node ends
-- the oldest (other than `new`); a cluster only counts them, for the caller.
-- Returns -1 when refused, else how many were ended or are beyond the cap.
local function adopt(index, old, new, cap, prefix)
  local now = now_us()
  for _, h in ipairs({ old, new }) do
    if h ~= '' then
      local lapses = redis.call('ZSCORE', index, '~' .. h)
      if lapses and tonumber(lapses) > now then
        return -1
      end
    end
  end
  if old ~= '' then
    redis.call('ZREM', index, old)
  end
  if new ~= '' then
    redis.call('ZADD', index, score(now), new)
  end
  local live = sweep(index, now, prefix)
  local over = #live - cap
  if over <= 0 then
    return 0
  end
  if not prefix then
    return over
  end
  local ended = 0
  for _, h in ipairs(live) do
    if ended == over then
      break
    end
    if h ~= new then
      redis.call('DEL', prefix .. h)
      redis.call('ZREM', index, h)
      ended = ended + 1
    end
  end
  return ended
end

-- Applies one request's changes to the hash `key`, laid out from ARGV[b]
-- as update.lua's ARGV from ARGV[1]: the TTL, the version field and its
-- value, '1' when cleared, n, n removed fields, then field, value, ...
local function apply(key, b)
  if ARGV[b + 3] == '1' then
    redis.call('DEL', key)
    redis.call('HSET', key, ARGV[b + 1], ARGV[b + 2])
  end
  local removed = tonumber(ARGV[b + 4])
  for i = b + 5, b + 4 + removed do
    redis.call('HDEL', key, ARGV[i])
  end
  for i = b + 5 + removed, #ARGV - 1, 2 do
    redis.call('HSET', key, ARGV[i], ARGV[i + 1])
  end
end
