-- The sessions whose last commit left a run open that no node drives: its
-- lease has expired, or is held by node ARGV[1] (this node, before a
-- restart: holders are `<node>/<run>`).

local own = ARGV[1] .. '/'
local orphaned = {}
for _, id in ipairs(redis.call('SMEMBERS', 'as:open-runs')) do
  local holder = redis.call('GET', 'as:{' .. id .. '}:lease')
  if not holder or (ARGV[1] ~= '' and string.sub(holder, 1, #own) == own) then
    orphaned[#orphaned + 1] = id
  end
end
return orphaned
