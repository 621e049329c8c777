-- Applies one request's writes to the session log, whole or not at all. A
-- script that fails halfway keeps what it wrote, so every op is checked
-- first, against the heads the request's earlier ops leave, and only then
-- are they all written.
--
-- ARGV holds the ops one after another, each its name and then its fields,
-- as `encode` in redis.rs lays them out; '' stands for an absent field.
-- The key layout is the one redis.rs documents.

local function key(id, part)
  return 'as:{' .. id .. '}:' .. part
end

-- A session's head as the checked ops leave it; false: it does not exist.
local heads = {}
local function head(id)
  if heads[id] == nil then
    local stored = redis.call('HGET', key(id, 'meta'), 'head')
    heads[id] = stored and tonumber(stored) or false
  end
  return heads[id]
end

-- A session's epoch as the checked ops leave it.
local epochs = {}
local function epoch_of(id)
  if epochs[id] == nil then
    epochs[id] = redis.call('HGET', key(id, 'meta'), 'epoch')
  end
  return epochs[id]
end

-- A session's run lease holder as the checked ops leave it; false: nobody.
local leases = {}
local function lease(id)
  if leases[id] == nil then
    leases[id] = redis.call('GET', key(id, 'lease'))
  end
  return leases[id]
end

local function hset_or_hdel(hash, field, value)
  if value ~= '' then
    redis.call('HSET', hash, field, value)
  else
    redis.call('HDEL', hash, field)
  end
end

local writes, i = {}, 1
while i <= #ARGV do
  local op, id = ARGV[i], ARGV[i + 1]
  if op == 'create' then
    local epoch, provider, now = ARGV[i + 2], ARGV[i + 3], ARGV[i + 4]
    i = i + 5
    if head(id) then
      return redis.error_reply('EXISTS ' .. id)
    end
    heads[id] = 0
    epochs[id] = epoch
    writes[#writes + 1] = function()
      local meta = key(id, 'meta')
      redis.call('HSET', meta, 'id', id, 'epoch', epoch, 'created_at', now, 'updated_at', now, 'head', 0, 'base_seq', 0)
      hset_or_hdel(meta, 'provider', provider)
      redis.call('ZADD', 'as:sessions', now, id)
    end
  elseif op == 'append' then
    local epoch, count, at = ARGV[i + 2], tonumber(ARGV[i + 3]), i + 4
    local after = at + 2 * count
    local name, open_run, cost_mode, cost = ARGV[after], ARGV[after + 1], ARGV[after + 2], ARGV[after + 3]
    local started_run, started_seq, now = ARGV[after + 4], ARGV[after + 5], ARGV[after + 6]
    i = after + 7
    local first, last = tonumber(ARGV[at]), ARGV[at + 2 * (count - 1)]
    if head(id) and epoch_of(id) ~= epoch then
      return redis.error_reply('EPOCHMOVED ' .. id)
    end
    if head(id) ~= first - 1 then
      return redis.error_reply('NOTATHEAD ' .. id .. ' ' .. ARGV[at])
    end
    heads[id] = tonumber(last)
    writes[#writes + 1] = function()
      local meta, log = key(id, 'meta'), key(id, 'log')
      for frame = 0, count - 1 do
        redis.call('XADD', log, ARGV[at + 2 * frame] .. '-0', 'f', ARGV[at + 2 * frame + 1])
      end
      redis.call('HSET', meta, 'head', last, 'updated_at', now)
      hset_or_hdel(meta, 'name', name)
      hset_or_hdel(meta, 'open_run', open_run)
      if open_run ~= '' then
        redis.call('SADD', 'as:open-runs', id)
      else
        redis.call('SREM', 'as:open-runs', id)
      end
      if cost_mode == 'set' then
        hset_or_hdel(meta, 'cost_usd', cost)
      end
      if started_run ~= '' then
        redis.call('HSET', key(id, 'runs'), started_run, started_seq)
      end
      redis.call('ZADD', 'as:sessions', now, id)
    end
  elseif op == 'send' then
    local client_message_id, answer = ARGV[i + 2], ARGV[i + 3]
    i = i + 4
    writes[#writes + 1] = function()
      redis.call('HSETNX', key(id, 'sends'), client_message_id, answer)
    end
  elseif op == 'continuation' then
    local provider, continuation = ARGV[i + 2], ARGV[i + 3]
    i = i + 4
    writes[#writes + 1] = function()
      hset_or_hdel(key(id, 'continuations'), provider, continuation)
    end
  elseif op == 'compact' then
    local epoch, seq, snapshot = ARGV[i + 2], ARGV[i + 3], ARGV[i + 4]
    i = i + 5
    -- Only at the head (frames after it would keep the old epoch), and once
    -- there (another node may have compacted it first).
    local base = tonumber(redis.call('HGET', key(id, 'meta'), 'base_seq') or '0')
    if head(id) ~= tonumber(seq) or base >= tonumber(seq) then
      return redis.error_reply('NOTATHEAD ' .. id .. ' ' .. (tonumber(seq) + 1))
    end
    epochs[id] = epoch
    writes[#writes + 1] = function()
      redis.call('HSET', key(id, 'base'), 'seq', seq, 'snapshot', snapshot)
      redis.call('XTRIM', key(id, 'log'), 'MINID', (tonumber(seq) + 1) .. '-0')
      redis.call('HSET', key(id, 'meta'), 'epoch', epoch, 'base_seq', seq)
      local runs = redis.call('HGETALL', key(id, 'runs'))
      for field = 1, #runs, 2 do
        if tonumber(runs[field + 1]) <= tonumber(seq) then
          redis.call('HDEL', key(id, 'runs'), runs[field])
        end
      end
    end
  elseif op == 'announce' then
    local node, kind, data, at = ARGV[i + 2], ARGV[i + 3], ARGV[i + 4], ARGV[i + 5]
    i = i + 6
    writes[#writes + 1] = function()
      redis.call('XADD', 'as:events', 'MAXLEN', '~', 10000, '*',
        'node', node, 'session', id, 'kind', kind, 'data', data, 'head', at)
    end
  elseif op == 'lease' then
    local action, holder, ttl = ARGV[i + 2], ARGV[i + 3], ARGV[i + 4]
    i = i + 5
    local held = lease(id)
    if (action == 'take' and held and held ~= holder) or (action == 'keep' and held ~= holder) then
      return redis.error_reply('LEASED ' .. id)
    end
    if action == 'release' then
      if held == holder then
        leases[id] = false
        writes[#writes + 1] = function()
          redis.call('DEL', key(id, 'lease'))
        end
      end
    else
      leases[id] = holder
      writes[#writes + 1] = function()
        redis.call('SET', key(id, 'lease'), holder, 'PX', ttl)
      end
    end
  elseif op == 'delete' then
    i = i + 2
    heads[id] = false
    epochs[id] = false
    leases[id] = false
    writes[#writes + 1] = function()
      redis.call('DEL', key(id, 'meta'), key(id, 'log'), key(id, 'sends'), key(id, 'continuations'),
        key(id, 'base'), key(id, 'runs'), key(id, 'lease'))
      redis.call('ZREM', 'as:sessions', id)
      redis.call('SREM', 'as:open-runs', id)
    end
  else
    return redis.error_reply('BADOP unknown op ' .. tostring(op))
  end
end

for _, write in ipairs(writes) do
  write()
end
return #writes
