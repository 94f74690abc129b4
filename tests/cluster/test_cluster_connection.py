"""The harness's Redis client on a real Redis Cluster: streams and scripts within one hash tag, cross-slot refusal,
and a master's failover under a client that carries on."""

from __future__ import annotations

from collections.abc import Iterator
from functools import partial

import pytest
import redis
from redis.cluster import RedisCluster
from redis.crc import key_slot
from redis.exceptions import ClusterDownError, SlotNotCoveredError

from harness.transport.connection import CONNECT_TIMEOUT_S, SOCKET_TIMEOUT_S, redis_client
from tests.support.processes import wait_for
from tests.support.redis_cluster import MASTERS, LocalRedisCluster

# Moves a stream's entries to another stream and acks them, in one script: both keys carry {p1}.
MOVE_SCRIPT = """
local entries = redis.call('XREADGROUP', 'GROUP', ARGV[1], 'c', 'COUNT', 100, 'STREAMS', KEYS[1], '>')
if not entries then return 0 end
local moved = 0
for _, entry in ipairs(entries[1][2]) do
  redis.call('XADD', KEYS[2], '*', 'from', entry[1])
  redis.call('XACK', KEYS[1], ARGV[1], entry[1])
  moved = moved + 1
end
return moved
"""
INPUT, OUTPUT = "harness:{p1}:signals", "harness:{p1}:results"
# What a command meets while a master is dead and before its replica is promoted.
FAILOVER_ERRORS = (redis.ConnectionError, redis.TimeoutError, ClusterDownError, SlotNotCoveredError)


@pytest.fixture()
def client(redis_cluster_url: str) -> Iterator[redis.Redis]:
    client = redis_client(redis_cluster_url)
    yield client
    client.close()


def test_the_cluster_has_three_masters_each_with_a_replica_and_the_client_sees_it(
        redis_cluster: LocalRedisCluster, client: redis.Redis) -> None:
    assert len(redis_cluster.masters()) == MASTERS and len(redis_cluster.live_ports()) == 2 * MASTERS
    assert isinstance(client, RedisCluster)
    assert sorted(node.port for node in client.get_primaries()) == redis_cluster.masters()
    assert client.nodes_manager.connection_kwargs["socket_timeout"] == SOCKET_TIMEOUT_S
    assert client.nodes_manager.connection_kwargs["socket_connect_timeout"] == CONNECT_TIMEOUT_S


def test_query_options_of_a_cluster_url_win(redis_cluster: LocalRedisCluster) -> None:
    client = redis_client(f"{redis_cluster.url}?socket_timeout=90")
    assert client.nodes_manager.connection_kwargs["socket_timeout"] == 90.0
    client.close()


def test_streams_and_a_script_over_keys_that_share_a_hash_tag(client: redis.Redis) -> None:
    assert key_slot(INPUT.encode()) == key_slot(OUTPUT.encode())
    client.xgroup_create(INPUT, "legacy", id="0", mkstream=True)
    for n in range(5):
        client.xadd(INPUT, {"n": n})
    read = client.xreadgroup("legacy", "c", {INPUT: ">"}, count=2)
    assert [fields[b"n"] for _, fields in read[0][1]] == [b"0", b"1"]

    move = client.register_script(MOVE_SCRIPT)
    assert move(keys=[INPUT, OUTPUT], args=["legacy"]) == 3  # the three entries not read yet
    assert client.xlen(OUTPUT) == 3
    assert client.xpending(INPUT, "legacy")["pending"] == 2  # read above, not acked


def test_a_script_over_two_partitions_is_refused_before_it_runs(client: redis.Redis) -> None:
    other = "harness:{p2}:results"
    assert key_slot(INPUT.encode()) != key_slot(other.encode())
    with pytest.raises(redis.RedisClusterException, match="all keys must map to the same key slot"):
        client.register_script(MOVE_SCRIPT)(keys=[INPUT, other], args=["legacy"])
    assert client.exists(other) == 0


def test_a_transaction_within_one_hash_tag_runs_and_across_tags_is_refused(client: redis.Redis) -> None:
    pipe = client.pipeline(transaction=True)
    pipe.set("harness:{p1}:a", 1).incr("harness:{p1}:b")
    pipe.execute()
    assert client.mget("harness:{p1}:a", "harness:{p1}:b") == [b"1", b"1"]
    across = client.pipeline(transaction=True)
    across.set("harness:{p1}:a", 2).set("harness:{p2}:a", 2)
    with pytest.raises(redis.RedisClusterException, match="same slot"):
        across.execute()
    assert client.get("harness:{p1}:a") == b"1"


def test_a_killed_master_fails_over_and_the_same_client_carries_on(
        redis_cluster: LocalRedisCluster, client: redis.Redis) -> None:
    client.xgroup_create(INPUT, "legacy", id="0", mkstream=True)
    move = client.register_script(MOVE_SCRIPT)  # loaded on the old master only: reloaded after NOSCRIPT
    for n in range(1, 11):
        client.xadd(INPUT, {"n": n}, id=f"{n}-0")
    assert move(keys=[INPUT, OUTPUT], args=["legacy"]) == 10
    redis_cluster.wait_replicated(INPUT)  # replication is asynchronous: only this survives for sure

    killed = redis_cluster.kill_master_of(INPUT)
    failed: list[str] = []

    def added(n: int) -> bool:
        # What the harness's store-error backoff does: retry until the replica has taken over. Explicit
        # ids: an entry written twice would be refused, not hidden.
        try:
            client.xadd(INPUT, {"n": n}, id=f"{n}-0")
        except FAILOVER_ERRORS as exc:
            failed.append(type(exc).__name__)
            return False
        return True

    for n in range(11, 16):
        wait_for(partial(added, n), 30.0, f"entry {n} to be written")
    redis_cluster.wait_for_failover(killed)

    assert redis_cluster.master_of(INPUT) != killed
    assert failed, "the writes should have met the failover, not run before it"
    assert move(keys=[INPUT, OUTPUT], args=["legacy"]) == 5
    assert client.xlen(INPUT) == 15 and client.xlen(OUTPUT) == 15
    assert client.xpending(INPUT, "legacy")["pending"] == 0
