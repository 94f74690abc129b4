"""The commit script: results, dead letters, production results under the fencing token, and acks.

It runs as one Lua script, so it is atomic (Redis transactions do not roll back, scripts run
whole). Only the worker named `primary` in the roles hash publishes to production, and only
for input entries past the production watermark: every input entry gets exactly one
production result, whichever worker was primary when it was committed. A consumer whose lease
is not the one in Redis is refused (FENCED), and a commit retried after its reply was lost
writes nothing twice (its first ack is no longer pending).
"""

from __future__ import annotations

# Stream entry ids in order, in Lua: 'ms-seq' compared as numbers (shared by every script that needs it).
LUA_ENTRY_AFTER = """
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
"""

COMMIT_SCRIPT = """
-- KEYS: 1 results, 2 dead letters, 3 lease, 4 dropped dead letters counter, 5 model state
-- ARGV: 1 worker, 2 group, 3 n results, 4 n dead letters, 5 results maxlen (0 = unbounded),
--       6 our lease value ('' = no lease check), 7 dead letters maxlen (0 = unbounded),
--       8 input stream, 9 roles, 10 production stream, 11 production channel,
--       12 '1' when a model snapshot follows ('0' otherwise), 13 the snapshot (or ''),
--       then n x (entry id, payload), n x (entry, reason, detail, signal id, payload, size, sha256),
--       then ack ids
-- The input, roles and production are names in ARGV, not KEYS: Redis 7 checks every declared key
-- against the caller's ACL as read-write, and a shadow may only read the roles and never touch
-- production (docs/security.md); each command below is still checked on its own.
""" + LUA_ENTRY_AFTER + """
local worker, group = ARGV[1], ARGV[2]
local n_results, n_dead, maxlen = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local lease, dead_maxlen = ARGV[6], tonumber(ARGV[7])
local input, roles, production, channel = ARGV[8], ARGV[9], ARGV[10], ARGV[11]
if lease ~= '' and redis.call('GET', KEYS[3]) ~= lease then
  return redis.error_reply('FENCED worker ' .. worker .. ' no longer holds its lease')
end
local role = redis.call('HMGET', roles, 'primary', 'epoch', 'watermark')
local is_primary = role[1] == worker
local epoch = role[2] or '0'
local first_ack = 14 + 2 * n_results + 7 * n_dead
if first_ack <= #ARGV then
  local pending = redis.call('XPENDING', input, group, ARGV[first_ack], ARGV[first_ack], 1)
  if #pending == 0 then return {is_primary and 1 or 0, tonumber(epoch), 0, 1} end
end
local published_until = role[3] or '0-0'  -- entries at or below it already have a production result
local watermark = published_until
local published = 0
local at = 14
for i = 1, n_results do
  local entry, payload = ARGV[at], ARGV[at + 1]
  at = at + 2
  if maxlen > 0 then
    redis.call('XADD', KEYS[1], 'MAXLEN', '~', maxlen, '*', 'data', payload)
  else
    redis.call('XADD', KEYS[1], '*', 'data', payload)
  end
  if is_primary and after(entry, published_until) then
    redis.call('XADD', production, '*', 'data', payload, 'epoch', epoch, 'entry', entry, 'worker', worker)
    redis.call('PUBLISH', channel, payload)
    if after(entry, watermark) then watermark = entry end
    published = published + 1
  end
end
for i = 1, n_dead do
  if dead_maxlen > 0 and redis.call('XLEN', KEYS[2]) >= dead_maxlen then
    redis.call('INCR', KEYS[4])
    redis.call('XADD', KEYS[2], 'MAXLEN', dead_maxlen, '*', 'entry', ARGV[at], 'reason', ARGV[at + 1],
               'detail', ARGV[at + 2], 'signal_id', ARGV[at + 3], 'data', ARGV[at + 4], 'size', ARGV[at + 5],
               'sha256', ARGV[at + 6])
  else
    redis.call('XADD', KEYS[2], '*', 'entry', ARGV[at], 'reason', ARGV[at + 1], 'detail', ARGV[at + 2],
               'signal_id', ARGV[at + 3], 'data', ARGV[at + 4], 'size', ARGV[at + 5], 'sha256', ARGV[at + 6])
  end
  at = at + 7
end
if published > 0 then
  redis.call('HSET', roles, 'watermark', watermark)
end
if at <= #ARGV then
  redis.call('XACK', input, group, unpack(ARGV, at, #ARGV))
  if ARGV[12] == '1' then
    -- The learned state goes with the acks: a restart resumes exactly after the last committed entry.
    redis.call('HSET', KEYS[5], 'snapshot', ARGV[13], 'entry', ARGV[#ARGV])
  end
end
return {is_primary and 1 or 0, tonumber(epoch), published, 0}
"""
