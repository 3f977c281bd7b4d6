-- Cluster: lists a record in its user's index after the record was written
-- (see users.rs), in place of the handle it was rotated from.
-- KEYS[1]  the user's index
-- ARGV[1]  the old handle or '', ARGV[2] the new handle, ARGV[3] the cap
-- Returns -1 when a tombstone names either handle (nothing changed), else
-- how many members are beyond the cap.
return adopt(KEYS[1], ARGV[1], ARGV[2], tonumber(ARGV[3]), false)
