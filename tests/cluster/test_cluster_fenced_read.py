"""The worker's fenced read on a real Redis Cluster: the lease and the input of a partition share its slot,
so the script runs on the partition's node; a copy that lost the partition's lease claims nothing."""

from __future__ import annotations

import pytest

from harness.partitions import all_partitions
from harness.transport import keys
from harness.transport.connection import redis_client
from harness.transport.errors import TransportFenced
from harness.transport.streams import StreamTransport

WORKER = "legacy"


def test_a_partitions_fenced_read_runs_on_its_node_and_refuses_a_copy_that_lost_the_lease(
        redis_cluster_url: str) -> None:
    client = redis_client(redis_cluster_url)
    partition = all_partitions(8)[5]
    stream, lease = keys.scoped(keys.DEFAULT_INPUT_STREAM, partition), keys.scoped(keys.lease_key(WORKER), partition)
    transport = StreamTransport(client, WORKER, partition=partition)
    try:
        entries = [client.xadd(stream, {keys.PAYLOAD_FIELD: b"signal"}).decode() for _ in range(12)]
        transport.acquire_lease(ttl_s=30.0, wait_s=0.0)
        got = transport.read(6, 0) + transport.read(6, 0)  # the second six were read ahead
        assert [d.entry_id for d in got] == entries
        assert transport.read(6, 20) == [], "the wait for new entries (XREAD BLOCK) runs on the same node"
        client.set(lease, "99 other-host 1")
        client.xadd(stream, {keys.PAYLOAD_FIELD: b"signal"})
        with pytest.raises(TransportFenced):
            transport.read(6, 0)
        assert int(client.xpending(stream, WORKER)["pending"]) == 12, "the refused read claimed nothing"
    finally:
        transport.close()

