"""A worker's control plane in Redis: heartbeat, drain flag, first-deployment role and its lease.

The lease makes one process the only consumer of a worker name. It carries a fencing token that
the commit script checks, so a copy that lost its lease (paused, partitioned) cannot commit.
"""

from __future__ import annotations

import os
import socket
import time

import redis

from harness.partitions import Partition
from harness.transport import keys
from harness.transport.base import Heartbeat
from harness.transport.errors import LeaseHeld, StateVersionMismatch, TransportFenced, TransportUnavailable
from harness.transport.redis_errors import translated
from harness.transport.replies import text

DRAIN = "drain"  # the control flag's value that asks a worker to finish its batch and exit
READ_MARGIN_MS = 1000  # a read is sent only while the lease outlives its wait by this much (a quarter TTL at most)

ACQUIRE_SCRIPT = """
-- KEYS: 1 lease, 2 token counter. ARGV: 1 holder ('host pid'), 2 ttl ms, 3 holder we may replace
local current = redis.call('GET', KEYS[1])
if current then
  local holder = string.sub(current, (string.find(current, ' ', 1, true) or 0) + 1)
  if holder ~= ARGV[3] then return {0, current} end
end
local token = redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[1], token .. ' ' .. ARGV[1], 'PX', ARGV[2])
return {token, ''}
"""

RENEW_SCRIPT = """
-- KEYS: 1 lease, 2 token counter. ARGV: 1 our value, 2 ttl ms (0 releases)
local current = redis.call('GET', KEYS[1])
if ARGV[2] == '0' then
  if current == ARGV[1] then redis.call('DEL', KEYS[1]) end
  return 1
end
if not current then
  -- It expired while the store was away and nobody took it: no one else committed meanwhile. Taken and
  -- released since (a larger token) is refused: that holder re-read the pending entries and moved on.
  local token = redis.call('GET', KEYS[2])
  if token and token ~= string.sub(ARGV[1], 1, (string.find(ARGV[1], ' ', 1, true) or 0) - 1) then return 0 end
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
if current ~= ARGV[1] then return 0 end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
"""


def holder_identity() -> str:
    return f"{socket.gethostname()} {os.getpid()}"


def holder_verdict(current_holder: str, me: str) -> str:
    """What to do about the lease's current holder: 'replace', 'alive' or 'unknown'.

    'replace': a previous life of this process (same host and pid: a restarted container keeps its
    hostname and pid 1), or a pid on this host that no longer runs. 'alive': a running process on
    this host. 'unknown': another host; wait for its lease to expire."""
    host, _, pid = current_holder.rpartition(" ")
    my_host, _, my_pid = me.rpartition(" ")
    if host != my_host or not pid.isdigit():
        return "unknown"
    if pid == my_pid:
        return "replace"
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return "replace"
    except PermissionError:  # alive, owned by another user
        return "alive"
    return "alive"


class RedisControl:
    """One worker's control keys; with a partition, its lease, heartbeat, roles and model state are
    that partition's (the drain flag stays the worker's: a cutover drains every partition)."""

    def __init__(self, client: redis.Redis, worker: str, partition: Partition | None = None) -> None:
        self._client = client
        self._worker = worker
        self._partition = partition
        self.lease_key = keys.scoped(keys.lease_key(worker), partition)
        self._lease_token_key = keys.scoped(keys.lease_token_key(worker), partition)
        self._heartbeat_key = keys.scoped(keys.heartbeat_key(worker), partition)
        self._roles_key = keys.scoped(keys.ROLES_KEY, partition)
        self._model_state_key = keys.scoped(keys.model_state_key(worker), partition)
        self._started_ms = int(time.time() * 1000)
        self._acquire = client.register_script(ACQUIRE_SCRIPT)
        self._renew = client.register_script(RENEW_SCRIPT)
        self._lease_value = ""  # '<token> <host> <pid>' while we hold the lease
        self._lease_ttl_ms = 0
        # When the last acquire or renewal that Redis accepted was sent (monotonic clock): the lease
        # lasts at least until then plus its TTL, whatever this process did since (paused or not).
        self._lease_sent_at = 0.0

    @property
    def lease_value(self) -> str:
        return self._lease_value

    def beat(self, heartbeat: Heartbeat) -> None:
        with translated():
            self._client.hset(self._heartbeat_key, mapping={
                "pid": os.getpid(), "host": socket.gethostname(), "state": heartbeat.state,
                "model_version": heartbeat.model_version, "started_ms": self._started_ms,
                "last_seen_ms": int(time.time() * 1000), "detail": heartbeat.detail,
            })

    def drain_requested(self) -> bool:
        with translated():
            return bool(self._client.get(keys.control_key(self._worker)) == DRAIN.encode())

    def claim_primary_if_unset(self) -> bool:
        with translated():
            # Read first: once roles exist, a worker's Redis user may only read them (a shadow cannot write).
            if self._client.hexists(self._roles_key, "primary"):
                return False
            created = self._client.hsetnx(self._roles_key, "primary", self._worker)
            if created:
                self._client.hset(self._roles_key, mapping={"epoch": 1, "watermark": "0-0",
                                                           "switched_at_ms": int(time.time() * 1000)})
        return bool(created)

    def acquire_lease(self, ttl_s: float, wait_s: float) -> int:
        me = holder_identity()
        ttl_ms = max(int(ttl_s * 1000), 100)
        deadline = time.monotonic() + wait_s
        lease_keys = [self.lease_key, self._lease_token_key]
        while True:
            with translated():
                current = text(self._client.get(lease_keys[0]) or b"").partition(" ")[2]
                verdict = holder_verdict(current, me) if current else "unknown"
                sent_at = time.monotonic()
                token, _ = self._acquire(keys=lease_keys, args=[me, ttl_ms, current if verdict == "replace" else ""])
            if int(token) > 0:
                self._lease_value = f"{int(token)} {me}"
                self._lease_ttl_ms = ttl_ms
                self._lease_sent_at = sent_at
                return int(token)
            if verdict == "alive" or time.monotonic() >= deadline:
                host, _, pid = current.rpartition(" ")
                if self._partition is not None and self._partition.count > 1:
                    raise LeaseHeld(f"partition {self._partition} of worker {self._worker!r} is held by "
                                    f"another replica (host {host}, pid {pid})")
                raise LeaseHeld(f"worker {self._worker!r} is already running (host {host}, pid {pid}); "
                                f"stop it first: one live consumer per worker name")
            time.sleep(min(0.5, ttl_s / 4))

    def renew_lease(self) -> bool:
        if not self._lease_value:
            return False
        sent_at = time.monotonic()
        with translated():
            kept = self._renew(keys=[self.lease_key, self._lease_token_key],
                               args=[self._lease_value, self._lease_ttl_ms])
        if kept:  # the lease keeper's thread renews too: keep the later of two renewals
            self._lease_sent_at = max(self._lease_sent_at, sent_at)
        return bool(kept)

    def read_window_ms(self, block_ms: int, confirm: bool = False) -> int:
        """How long a read of new entries sent now may wait for them: at most `block_ms`, and never past the
        end of this copy's lease less a margin for the request's trip, so Redis hands entries to this copy
        only while it holds the lease. A lease that ends too soon is renewed first; TransportFenced if
        another copy holds it now (this one was paused past its TTL). Without a lease: `block_ms`.

        `confirm` renews first whatever the local clock says (Redis itself checks the lease): the caller
        says nothing fenced (a commit) ran since its last read, so the time since could hide a pause the
        monotonic clock did not count (a virtual machine frozen with its clock).

        Why: entries claimed after the new owner re-read the consumer's pending entries would stay pending,
        unanswered, and get no production result once the owner's production watermark passed them."""
        if not self._lease_value:
            return block_ms
        margin_ms = min(READ_MARGIN_MS, self._lease_ttl_ms / 4)
        window_ms = self._lease_left_ms() - margin_ms
        if confirm or window_ms < block_ms:
            if not self.renew_lease():
                raise TransportFenced(f"worker {self._worker!r} lost its lease to another copy: read refused")
            # Looked at again after the renewal: a reply that came back late, or a pause once it came back,
            # may leave less than the margin, and even a read that does not wait must not go out then.
            window_ms = self._lease_left_ms() - margin_ms
            if window_ms <= 0:
                raise TransportUnavailable(f"worker {self._worker!r}: its lease renewal came back too late "
                                           f"to read before the lease ends")
        return min(block_ms, int(window_ms))

    def _lease_left_ms(self) -> float:
        return (self._lease_sent_at - time.monotonic()) * 1000 + self._lease_ttl_ms

    def release_lease(self) -> None:
        if self._lease_value:
            with translated():
                self._renew(keys=[self.lease_key, self._lease_token_key], args=[self._lease_value, 0])
            self._lease_value = ""

    def bind_model_version(self, model_version: str, reset: bool) -> bytes | None:
        key = self._model_state_key
        with translated():
            stored_version, snapshot = self._client.hmget(key, "model_version", "snapshot")
            if stored_version is not None and text(stored_version) != model_version and not reset:
                raise StateVersionMismatch(
                    f"worker {self._worker!r} has state from model version {text(stored_version)!r}, not "
                    f"{model_version!r}: start it with the old settings, or with --reset-state to start fresh")
            if reset:
                self._delete_state()
                snapshot = None
            self._client.hset(key, "model_version", model_version)
        return bytes(snapshot) if snapshot is not None else None

    def _delete_state(self) -> None:
        doomed = [self._model_state_key]
        doomed += list(self._client.scan_iter(match=keys.scoped(keys.state_pattern(self._worker), self._partition),
                                              count=1000))
        for start in range(0, len(doomed), 500):
            self._client.delete(*doomed[start:start + 500])
