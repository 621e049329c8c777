-- The sessions retention says to compact, least recently updated first: no
-- run open, frames since their base, and more than ARGV[1] of them or last
-- updated before ARGV[2] (ms since the epoch); '' turns either rule off.
-- At most ARGV[3] of them.

local max_frames, idle_before, limit = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local found = {}
for _, id in ipairs(redis.call('ZRANGE', 'as:sessions', 0, -1)) do
  if #found >= limit then
    break
  end
  local meta = redis.call('HMGET', 'as:{' .. id .. '}:meta', 'head', 'base_seq', 'open_run', 'updated_at')
  local head, base = tonumber(meta[1]), tonumber(meta[2])
  if head and not meta[3] and head > base
    and ((max_frames and head - base > max_frames) or (idle_before and tonumber(meta[4]) < idle_before)) then
    found[#found + 1] = id
  end
end
return found
