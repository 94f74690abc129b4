"""The worker's fenced read: new entries are claimed only by the copy that holds the lease, in one
round trip per batch (a script checks the lease, then XREADGROUP), sent ahead like any read."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

import redis

from harness.transport.prefetch import PrefetchingReader, reply_entries

# Scripts cannot block: the script reads without BLOCK and, when nothing is new, returns the group's
# last-delivered id, from which a plain XREAD BLOCK (no group: it claims nothing) waits for the next entry.
FENCED_READ_SCRIPT = """
-- KEYS: 1 lease. ARGV: 1 our lease value ('' = no lease check), 2 input stream, 3 group, 4 consumer, 5 count
-- The input is a name in ARGV, not a key, as in the commit script (harness.transport.fencing): Redis 7
-- checks every declared key against the caller's ACL as read-write, and a worker reaches the input only
-- through its group's commands. In a cluster the input and the lease share their partition's slot.
local lease, input, group = ARGV[1], ARGV[2], ARGV[3]
if lease ~= '' and redis.call('GET', KEYS[1]) ~= lease then
  return redis.error_reply('FENCED consumer ' .. ARGV[4] .. ' no longer holds its lease: read refused')
end
local reply = redis.call('XREADGROUP', 'GROUP', group, ARGV[4], 'COUNT', ARGV[5], 'STREAMS', input, '>')
if reply then return reply end
for _, fields in ipairs(redis.call('XINFO', 'GROUPS', input)) do
  local name, last = nil, nil
  for at = 1, #fields, 2 do
    if fields[at] == 'name' then name = fields[at + 1] elseif fields[at] == 'last-delivered-id' then
      last = fields[at + 1]
    end
  end
  if name == group then return last end
end
return '0-0'
"""
FENCED_READ_SHA = hashlib.sha1(FENCED_READ_SCRIPT.encode()).hexdigest()


class FencedReader:
    """Raw entries ([id, [field, value, ...]]) of one consumer of one stream. A request sent ahead is
    answered (and its entries claimed) only while the lease is ours; a refusal raises redis's error
    naming FENCED (harness.transport.redis_errors turns it into TransportFenced)."""

    def __init__(self, client: redis.Redis, stream: str, group: str, consumer: str, lease_key: str,
                 lease_value: Callable[[], str]) -> None:
        self._stream = stream
        self._group = group
        self._consumer = consumer
        self._lease_key = lease_key
        self._lease_value = lease_value
        self._reader = PrefetchingReader(client)
        self._count = 0  # the count of the request in flight, to send it again after a script reload

    @property
    def in_flight(self) -> bool:
        return self._reader.in_flight

    def send(self, count: int) -> None:
        """Send the next fenced read now (answered at once, even empty); read() or take() returns it."""
        if not self._reader.in_flight:
            self._count = count
            self._reader.send_command(self._lease_key, "EVALSHA", FENCED_READ_SHA, 1, self._lease_key,
                                      self._lease_value(), self._stream, self._group, self._consumer, count)

    def read(self, count: int, block_ms: int) -> list[Any]:
        """The entries of the request in flight, or of one sent now; when there are none and `block_ms` > 0,
        waits up to `block_ms` for a new entry and reads once more."""
        entries, last_id = self._fenced(count)
        if entries or block_ms <= 0:
            return entries
        # The wait claims nothing, so it needs no fence; an entry added since the script ran is past
        # last_id, so it ends the wait at once (no wakeup is lost between the two requests).
        self._reader.send_command(self._stream, "XREAD", "COUNT", 1, "BLOCK", block_ms, "STREAMS",
                                  self._stream, last_id)
        if not reply_entries(self._reader.reply()):
            return []
        return self._fenced(count)[0]

    def take(self) -> list[Any]:
        """The entries of a request in flight, without sending one; [] when none is."""
        return self._fenced(self._count)[0] if self._reader.in_flight else []

    def drop(self) -> None:
        self._reader.drop()

    def _fenced(self, count: int) -> tuple[list[Any], Any]:
        """(entries, None) or ([], the group's last-delivered id) of the fenced read in flight or sent now."""
        self.send(count)
        try:
            reply = self._reader.reply()
        except redis.exceptions.NoScriptError:
            # A restarted or failed-over server forgot the script: load it on the same connection (the
            # same node in a cluster) and ask again.
            self._reader.send_command(self._lease_key, "SCRIPT", "LOAD", FENCED_READ_SCRIPT)
            self._reader.reply()
            self.send(self._count)
            reply = self._reader.reply()
        if isinstance(reply, bytes | str):
            return [], reply
        return reply_entries(reply), None
