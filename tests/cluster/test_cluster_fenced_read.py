"""Reads bounded by the lease on a real Redis Cluster: a partition's lease and input share its slot, and a copy
paused past the partition's TTL, whose partition another replica took, claims nothing when it wakes."""

from __future__ import annotations

import pytest

from harness.partitions import all_partitions
from harness.transport import keys
from harness.transport.connection import redis_client
from harness.transport.errors import TransportFenced
from harness.transport.streams import StreamTransport
from tests.support.processes import wait_for

WORKER = "legacy"


def test_a_replica_paused_past_its_partitions_ttl_claims_nothing_once_another_took_the_partition(
        redis_cluster_url: str) -> None:
    client = redis_client(redis_cluster_url)
    partition = all_partitions(8)[5]
    stream, lease = keys.scoped(keys.DEFAULT_INPUT_STREAM, partition), keys.scoped(keys.lease_key(WORKER), partition)
    transport = StreamTransport(client, WORKER, partition=partition)
    try:
        entries = [client.xadd(stream, {keys.PAYLOAD_FIELD: b"signal"}).decode() for _ in range(12)]
        transport.acquire_lease(ttl_s=0.5, wait_s=0.0)
        got = transport.read(6, 0) + transport.read(6, 0)  # the second six were read ahead
        assert [d.entry_id for d in got] == entries
        wait_for(lambda: not client.exists(lease), 10, "the paused replica's partition lease to expire")
        client.set(lease, "99 other-host 1")  # another replica took the partition
        client.xadd(stream, {keys.PAYLOAD_FIELD: b"signal"})
        with pytest.raises(TransportFenced):
            transport.read(6, 0)
        assert int(client.xpending(stream, WORKER)["pending"]) == 12, "the refused read claimed nothing"
    finally:
        transport.close()
