"""Duplicate-id detection on Redis: which signal ids of a batch are seen for the first time, in one round trip.

Ids are remembered in one hash per window of `ttl_s` seconds of the store's clock (field: signal id, value:
the input entry it came on). A batch checks the current and the previous window, and writes its new ids to
the current one, which expires when the next window ends: an id is remembered for at least `ttl_s` and at
most twice that. Each batch UNLINKs the window before the previous one, so a big hash is freed off Redis's
main thread, where its expiry would stall every client. A hash per window, rather than a key per id, makes
the check two HMGETs and one HSET per batch instead of a SET per message (a fifth of the server time).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import redis

from harness.partitions import Partition
from harness.transport import keys
from harness.transport.clock import StoreClock
from harness.transport.redis_errors import translated

CLOCK_RESYNC_S = 30.0

# KEYS: 1 the current window's hash, 2 the previous window's, 3 the one before (freed now: UNLINK frees a
# big hash off Redis's main thread, where its expiry would stall every client while it is deleted).
# ARGV: 1 milliseconds the current window
# must live on, then (signal id, entry id) pairs. Answers 1 where the id is new or was first seen on this very
# entry (a redelivery), 0 where it came on another entry (also earlier in this batch).
SEEN_IDS_SCRIPT = """
local n = (#ARGV - 1) / 2
local chunk = 2000  -- unpack() is bounded by Lua's C stack (8000 values)
local function each_chunk(list, run)
  for first = 1, #list, chunk do run(unpack(list, first, math.min(first + chunk - 1, #list))) end
end
local ids = {}
for i = 1, n do ids[i] = ARGV[2 * i] end
local current, previous = {}, {}
for first = 1, n, chunk do
  local last = math.min(first + chunk - 1, n)
  local now_part = redis.call('HMGET', KEYS[1], unpack(ids, first, last))
  local before_part = redis.call('HMGET', KEYS[2], unpack(ids, first, last))
  for j = 1, last - first + 1 do
    current[first + j - 1] = now_part[j]
    previous[first + j - 1] = before_part[j]
  end
end
local verdicts, fresh, writes = {}, {}, {}
for i = 1, n do
  local id, entry = ARGV[2 * i], ARGV[2 * i + 1]
  local first_entry = fresh[id] or current[i] or previous[i]
  if first_entry then
    verdicts[i] = (first_entry == entry) and 1 or 0
  else
    fresh[id] = entry
    writes[#writes + 1] = id
    writes[#writes + 1] = entry
    verdicts[i] = 1
  end
end
if #writes > 0 then
  each_chunk(writes, function(...) redis.call('HSET', KEYS[1], ...) end)
  redis.call('PEXPIRE', KEYS[1], ARGV[1])  -- the backstop, should no batch come to unlink it
end
redis.call('UNLINK', KEYS[3])
return verdicts
"""


class SeenIds:
    """One worker's memory of the signal ids it has received (per partition)."""

    def __init__(self, client: redis.Redis, worker: str, ttl_s: int, partition: Partition | None,
                 server_time_ms: Callable[[], float]) -> None:
        self._worker = worker
        self._ttl_s = max(int(ttl_s), 1)
        self._partition = partition
        self._script = client.register_script(SEEN_IDS_SCRIPT)
        self._clock = StoreClock(server_time_ms, CLOCK_RESYNC_S)
        self._window = -1  # the latest window used: a resync that moves the clock back never reopens an older one

    def first_sightings(self, ids: Sequence[tuple[str, str]]) -> list[bool]:
        if not ids:
            return []
        self._clock.sync_if_due()
        now_s = self._clock.now_ms() / 1000.0
        window = self._window = max(int(now_s // self._ttl_s), self._window)
        lives_on_ms = max(int(((window + 2) * self._ttl_s - now_s) * 1000.0) + 1, 1)  # to the end of the next window
        args: list[str | int] = [lives_on_ms]
        for signal_id, entry_id in ids:
            args += (signal_id, entry_id)
        window_keys = [keys.scoped(keys.seen_ids_key(self._worker, at), self._partition)
                       for at in (window, window - 1, window - 2)]
        with translated():
            verdicts = self._script(keys=window_keys, args=args)
        return [flag == 1 for flag in verdicts]
