"""The switch as one Lua script: fence, copy the new primary's backlog to production, hand over.

Run as one script, the switch cannot be invalidated by the workers' commits, which a WATCHed
MULTI/EXEC was whenever the new primary committed faster than the backlog could be sent. The
client lists the backlog it has already read and checked against the input (results-stream ids
and their input entries); the script copies those payloads server-side, then also whatever the new
primary committed since the client's last read, decoding each result row with cmsgpack.
"""

from __future__ import annotations

from harness.transport.fencing import LUA_ENTRY_AFTER

SWITCH_SCRIPT = """
-- KEYS: 1 roles, 2 the new primary's results stream, 3 production stream
-- ARGV: 1 target, 2 expected primary ('' for none), 3 expected epoch, 4 expected watermark,
--       5 results-stream id read up to, 6 production channel, 7 position of 'entry' in a result row,
--       8 now (ms), 9 rollback window (ms, '' for none), then pairs (results-stream id, input entry)
""" + LUA_ENTRY_AFTER + """
local role = redis.call('HMGET', KEYS[1], 'primary', 'epoch', 'watermark')
if (role[1] or '') ~= ARGV[2] or (role[2] or '0') ~= ARGV[3] or (role[3] or '0-0') ~= ARGV[4] then
  return {0}  -- a commit or another switch moved the roles since the client read them: read again
end
local target, channel, at = ARGV[1], ARGV[6], tonumber(ARGV[7])
local epoch = tonumber(ARGV[3]) + 1
local watermark = ARGV[4]
local published = 0
local function publish(payload, entry)
  redis.call('XADD', KEYS[3], '*', 'data', payload, 'epoch', epoch, 'entry', entry, 'worker', target)
  redis.call('PUBLISH', channel, payload)
  watermark = entry
  published = published + 1
end
for i = 10, #ARGV, 2 do
  local found = redis.call('XRANGE', KEYS[2], ARGV[i], ARGV[i])
  if #found == 0 then return redis.error_reply('SWITCH result ' .. ARGV[i] .. ' is gone (trimmed?): run it again') end
  publish(found[1][2][2], ARGV[i + 1])
end
for _, item in ipairs(redis.call('XRANGE', KEYS[2], '(' .. ARGV[5], '+')) do
  local ok, row = pcall(cmsgpack.unpack, item[2][2])
  local entry = ok and type(row) == 'table' and row[at] or nil
  if type(entry) == 'string' and after(entry, watermark) then publish(item[2][2], entry) end
end
local mapping = {'primary', target, 'epoch', epoch, 'watermark', watermark, 'switched_at_ms', ARGV[8],
                 'previous', ARGV[2]}
if ARGV[9] ~= '' then
  table.insert(mapping, 'rollback_until_ms')
  table.insert(mapping, tonumber(ARGV[8]) + tonumber(ARGV[9]))
end
redis.call('HSET', KEYS[1], unpack(mapping))
return {1, epoch, watermark, published}
"""
