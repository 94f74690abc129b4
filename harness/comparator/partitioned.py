"""One partition's comparison: its keys (under the partition's hash tag) and the lease that fences its checkpoints."""

from __future__ import annotations

import time
from dataclasses import replace
from typing import TYPE_CHECKING

import redis

from harness.transport import keys
from harness.transport.control import RedisControl
from harness.transport.redis_errors import translated

if TYPE_CHECKING:
    from harness.comparator.settings import ComparatorSettings

# KEYS: 1 the partition's comparator lease, 2.. the keys written. ARGV: 1 our lease value, then for each
# written key: 'set', value | 'hset', n, field, value, ... Nothing is written unless the lease is still ours,
# so a shard paused past its TTL cannot overwrite the checkpoint of the shard that took its partition.
FENCED_WRITE_SCRIPT = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
local at = 2
for i = 2, #KEYS do
  if ARGV[at] == 'set' then
    redis.call('SET', KEYS[i], ARGV[at + 1])
    at = at + 2
  else
    local n = tonumber(ARGV[at + 1])
    redis.call('HSET', KEYS[i], unpack(ARGV, at + 2, at + 1 + 2 * n))
    at = at + 2 + 2 * n
  end
end
return 1
"""

Write = tuple[str, bytes | dict[str, str]]  # (key, a SET's value or an HSET's fields)


def scoped_settings(settings: ComparatorSettings) -> ComparatorSettings:
    """The settings of `settings.partition`: its results streams, input, checkpoint and summary keys."""
    partition = settings.partition
    if partition is None or partition.tag is None:
        return settings
    if any(feed.tap is not None for feed in settings.feeds):
        raise ValueError("a tapped stream has no partitions: run the comparator without --partitions")
    feeds = [replace(feed, stream=keys.scoped(feed.stream, partition)) for feed in settings.feeds]
    return replace(settings, feeds=feeds, state_key=keys.scoped(settings.state_key, partition),
                   summary_key=keys.scoped(settings.summary_key, partition),
                   input_stream=keys.scoped(settings.input_stream, partition))


class Fence:
    """The lease of one partition of the comparison: renewed as checkpoints go, checked by each checkpoint."""

    def __init__(self, client: redis.Redis, control: RedisControl, ttl_s: float) -> None:
        self._control = control
        self._ttl_s = ttl_s
        self._renewed = time.monotonic()
        self._script = client.register_script(FENCED_WRITE_SCRIPT)

    def acquire(self) -> None:
        """Take the lease now, or raise LeaseHeld (another shard holds the partition)."""
        self._control.acquire_lease(self._ttl_s, wait_s=0.0)
        self._renewed = time.monotonic()

    def release(self) -> None:
        self._control.release_lease()

    def write(self, writes: list[Write]) -> bool:
        """Apply the writes at once if the lease is still ours (renewing it when a third of its TTL passed);
        False (nothing written) when another shard took it."""
        if time.monotonic() - self._renewed >= self._ttl_s / 3.0:
            if not self._control.renew_lease():
                return False
            self._renewed = time.monotonic()
        args: list[str | bytes | int] = [self._control.lease_value]
        for _, value in writes:
            if isinstance(value, bytes):
                args += ["set", value]
            else:
                args += ["hset", len(value), *(item for pair in value.items() for item in pair)]
        with translated():
            done = self._script(keys=[self._control.lease_key, *(key for key, _ in writes)], args=args)
        return bool(done)
