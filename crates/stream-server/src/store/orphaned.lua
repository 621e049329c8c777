-- The sessions whose last commit left a run open that no node drives: its
-- lease has expired, or is held by ARGV[1] (this node, before a restart).

local orphaned = {}
for _, id in ipairs(redis.call('SMEMBERS', 'as:open-runs')) do
  local holder = redis.call('GET', 'as:{' .. id .. '}:lease')
  if not holder or holder == ARGV[1] then
    orphaned[#orphaned + 1] = id
  end
end
return orphaned
