-- Cluster: what a listing needs of one record.
-- KEYS[1]  the record
-- ARGV     the fields to read
-- Returns the PTTL, the index the record names (or nil), then the fields'
-- values.
local out = redis.call('HMGET', KEYS[1], INDEX_FIELD, unpack(ARGV))
table.insert(out, 1, redis.call('PTTL', KEYS[1]))
return out
