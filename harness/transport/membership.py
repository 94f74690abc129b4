"""Who shares a worker's partitions: each replica renews its membership; a dead one expires.

The membership only says who is alive. Owning a partition is the partition's lease (with its
fencing token): a replica that believes a partition is its own but lost the lease cannot commit.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import redis

from harness.transport import keys
from harness.transport.redis_errors import translated
from harness.transport.replies import text

# KEYS: 1 the replicas sorted set. ARGV: 1 replica id, 2 ttl ms ('0' leaves).
# On the server's clock, so replicas on hosts whose clocks disagree still agree on who is alive.
RENEW_SCRIPT = """
local now = redis.call('TIME')
local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
if ARGV[2] == '0' then
  redis.call('ZREM', KEYS[1], ARGV[1])
else
  redis.call('ZADD', KEYS[1], now_ms + tonumber(ARGV[2]), ARGV[1])
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now_ms)
return redis.call('ZRANGE', KEYS[1], 0, -1)
"""


class Membership(ABC):
    @abstractmethod
    def renew(self, replica_id: str, ttl_s: float) -> list[str]:
        """Join or stay for another `ttl_s`; the live replicas (this one included), sorted."""

    @abstractmethod
    def leave(self, replica_id: str) -> None:
        """Leave at once, so the others take this replica's partitions without waiting for its TTL."""


class RedisMembership(Membership):
    def __init__(self, client: redis.Redis, worker: str) -> None:
        self._key = keys.replicas_key(worker)
        self._script = client.register_script(RENEW_SCRIPT)

    def renew(self, replica_id: str, ttl_s: float) -> list[str]:
        with translated():
            members = self._script(keys=[self._key], args=[replica_id, max(int(ttl_s * 1000), 1)])
        return sorted(text(member) for member in members)

    def leave(self, replica_id: str) -> None:
        with translated():
            self._script(keys=[self._key], args=[replica_id, "0"])
