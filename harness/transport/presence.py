"""Is a worker running, where, and how far behind: read over every partition of the input.

With one partition these are the single keys a worker always had; with P partitions a worker is
alive while any replica holds any of its partitions, and its lag is the sum over the partitions.
Shared below the services: the cutover (serving, stoppers) and the status displays read them.
"""

from __future__ import annotations

import redis

from harness.partitions import all_partitions
from harness.transport import keys
from harness.transport.replies import text
from harness.transport.roles import LAG_SCAN_LIMIT, group_lag

STOPPED_STATES = ("stopped", "drained")


def lease_holders(client: redis.Redis, worker: str, partitions: int = 1) -> dict[int, str]:
    """Partition index -> '<host> <pid>' of the process holding it, for the partitions that are held."""
    holders = {}
    for partition in all_partitions(partitions):
        lease = client.get(keys.scoped(keys.lease_key(worker), partition))
        if lease is not None:
            holders[partition.index] = text(lease).partition(" ")[2]
    return holders


def heartbeat_states(client: redis.Redis, worker: str, partitions: int = 1) -> dict[int, str]:
    """Partition index -> the state its runtime last reported (running, drained, stopped, ...)."""
    states = {}
    for partition in all_partitions(partitions):
        state = client.hget(keys.scoped(keys.heartbeat_key(worker), partition), "state")
        if state is not None:
            states[partition.index] = text(state)
    return states


def consuming(client: redis.Redis, worker: str, partitions: int = 1) -> bool:
    """Some process still consumes input for the worker: a held partition not idling drained or stopped."""
    states = heartbeat_states(client, worker, partitions)
    return any(states.get(index) not in STOPPED_STATES for index in lease_holders(client, worker, partitions))


def input_lag(client: redis.Redis, stream: str, worker: str, partitions: int = 1,
              limit: int = LAG_SCAN_LIMIT) -> int | None:
    """Entries of the input the worker has not acked, over every partition; None if a partition has no group."""
    total = 0
    for partition in all_partitions(partitions):
        lag = group_lag(client, keys.scoped(stream, partition), worker, limit=limit)
        if lag is None:
            return None
        total += lag
    return total


def pending(client: redis.Redis, stream: str, worker: str, partitions: int = 1) -> int:
    """Entries delivered to the worker and not acked yet, over every partition."""
    total = 0
    for partition in all_partitions(partitions):
        try:
            total += int(client.xpending(keys.scoped(stream, partition), worker)["pending"])
        except redis.ResponseError:  # no stream or no group there: nothing pending
            continue
    return total
