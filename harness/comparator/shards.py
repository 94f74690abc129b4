"""Comparator shards: several `harness comparator --partitions P` share the partitions, one live shard each.

A shard is a ReplicaSupervisor (harness/runtime/replicas.py) whose runner compares one partition: a
ComparatorService over that partition's results streams, checkpointing under its hash tag, fenced by the
partition's comparator lease. A shard that dies loses its leases within the TTL; the partitions move to
the live shards, which continue from the last checkpoint of each.
"""

from __future__ import annotations

import contextlib
from dataclasses import replace

import redis

from harness.comparator.partitioned import Fence
from harness.comparator.service import ComparatorService, ComparatorSettings
from harness.partitions import Partition
from harness.runtime.replicas import ReplicaSettings, ReplicaSupervisor, RuntimeThread
from harness.transport import keys
from harness.transport.control import RedisControl
from harness.transport.errors import TransportError
from harness.transport.membership import RedisMembership


class FencedComparator:
    """One partition's ComparatorService run under the partition's lease (a RunnableRuntime for RuntimeThread).
    The lease is taken before the checkpoint is loaded: a state read under another shard's lease could be
    older than the checkpoint that shard writes before its lease runs out."""

    def __init__(self, client: redis.Redis, settings: ComparatorSettings, partition: Partition,
                 lease_ttl_s: float) -> None:
        self._fence = Fence(client, RedisControl(client, keys.comparator_lease_name(settings.group), partition),
                            lease_ttl_s)
        self._fence.acquire()  # LeaseHeld: another shard holds it; RuntimeThread leaves it for the next round
        self._service = ComparatorService(client, replace(settings, partition=partition), fence=self._fence)

    @property
    def lease_lost(self) -> bool:
        return self._service.lease_lost

    def run(self) -> object:
        try:
            return self._service.run()
        finally:
            with contextlib.suppress(TransportError):  # else it expires by itself
                self._fence.release()

    def request_stop(self, *_: object) -> None:
        self._service.request_stop()


def run_shard(client: redis.Redis, settings: ComparatorSettings, partitions: int, lease_ttl_s: float) -> None:
    """One comparator shard: compares the partitions that fall to it until stopped (SIGTERM, SIGINT) or,
    with an idle limit, until each of its partitions ran dry."""
    name = keys.comparator_lease_name(settings.group)
    shard = ReplicaSupervisor(
        ReplicaSettings(name, partitions, lease_ttl_s, exit_when_idle=settings.exit_when_idle_s is not None),
        RedisMembership(client, name),
        lambda partition: RuntimeThread(partition, lambda part: FencedComparator(client, settings, part, lease_ttl_s)))
    import signal

    signal.signal(signal.SIGTERM, shard.request_stop)
    signal.signal(signal.SIGINT, shard.request_stop)
    shard.run()
