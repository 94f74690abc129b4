"""The commit script: results, dead letters, production results under the fencing token, and acks.

It runs as one Lua script, so it is atomic (Redis transactions do not roll back, scripts run
whole). Only the worker named `primary` in the roles hash publishes to production, and only
for input entries past the production watermark: every input entry gets exactly one
production result, whichever worker was primary when it was committed.
"""

from __future__ import annotations

COMMIT_SCRIPT = """
-- KEYS: 1 results, 2 dead letters, 3 input stream, 4 roles, 5 production stream, 6 production channel
-- ARGV: 1 worker, 2 group, 3 n results, 4 n dead letters, 5 results maxlen (0 = unbounded),
--       then n x (entry id, payload), n x (entry, reason, detail, signal id, payload), then ack ids
local function parse(id)
  local dash = string.find(id, '-', 1, true)
  if not dash then return tonumber(id), 0 end
  return tonumber(string.sub(id, 1, dash - 1)), tonumber(string.sub(id, dash + 1))
end
local function after(a, b)
  local ams, aseq = parse(a)
  local bms, bseq = parse(b)
  return ams > bms or (ams == bms and aseq > bseq)
end
local worker, group = ARGV[1], ARGV[2]
local n_results, n_dead, maxlen = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local role = redis.call('HMGET', KEYS[4], 'primary', 'epoch', 'watermark')
local is_primary = role[1] == worker
local epoch = role[2] or '0'
local published_until = role[3] or '0-0'  -- entries at or below it already have a production result
local watermark = published_until
local published = 0
local at = 6
for i = 1, n_results do
  local entry, payload = ARGV[at], ARGV[at + 1]
  at = at + 2
  if maxlen > 0 then
    redis.call('XADD', KEYS[1], 'MAXLEN', '~', maxlen, '*', 'data', payload)
  else
    redis.call('XADD', KEYS[1], '*', 'data', payload)
  end
  if is_primary and after(entry, published_until) then
    redis.call('XADD', KEYS[5], '*', 'data', payload, 'epoch', epoch, 'entry', entry, 'worker', worker)
    redis.call('PUBLISH', KEYS[6], payload)
    if after(entry, watermark) then watermark = entry end
    published = published + 1
  end
end
for i = 1, n_dead do
  redis.call('XADD', KEYS[2], '*', 'entry', ARGV[at], 'reason', ARGV[at + 1], 'detail', ARGV[at + 2],
             'signal_id', ARGV[at + 3], 'data', ARGV[at + 4])
  at = at + 5
end
if published > 0 then
  redis.call('HSET', KEYS[4], 'watermark', watermark)
end
if at <= #ARGV then
  redis.call('XACK', KEYS[3], group, unpack(ARGV, at, #ARGV))
end
return {is_primary and 1 or 0, tonumber(epoch), published}
"""
