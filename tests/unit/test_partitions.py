"""Partitions by device, their keys in one slot each, and replicas sharing them through leases."""

from __future__ import annotations

import threading
from collections import Counter

import pytest
from redis.crc import key_slot

from harness.partitions import Partition, all_partitions, partition_index
from harness.runtime.replicas import ReplicaSettings, ReplicaSupervisor, assigned
from harness.transport import keys
from harness.transport.memory import InMemoryMembership


def test_a_device_always_lands_in_the_same_partition_and_devices_spread_over_all() -> None:
    devices = [f"dev-{n}" for n in range(400)]
    first = [partition_index(device, 8) for device in devices]
    assert first == [partition_index(device, 8) for device in devices]
    spread = Counter(first)
    assert set(spread) == set(range(8)) and min(spread.values()) > 400 / 8 / 2
    assert {partition_index(device, 1) for device in devices} == {0}


def test_every_key_of_a_partition_shares_its_slot_and_one_partition_keeps_the_old_names() -> None:
    for partition in all_partitions(8):
        names = [keys.scoped(name, partition) for name in (
            keys.DEFAULT_INPUT_STREAM, keys.results_stream("legacy"), keys.dead_letter_stream("legacy"),
            keys.lease_key("legacy"), keys.ROLES_KEY, keys.PRODUCTION_STREAM, keys.seen_ids_key("legacy", 493_000),
            keys.model_state_key("legacy"))] + [keys.device_state_key("legacy", "dev-1", partition)]
        assert len({key_slot(name.encode()) for name in names}) == 1, names
    assert keys.scoped(keys.results_stream("legacy"), Partition(0, 1)) == keys.results_stream("legacy")
    assert keys.scoped(keys.results_stream("legacy"), None) == keys.results_stream("legacy")
    assert keys.scoped(keys.results_stream("legacy"), Partition(5, 8)) == "harness:{p5}:results:legacy"


@pytest.mark.parametrize("bad", [(8, 8), (-1, 8), (0, 0), (0, 5000)])
def test_a_partition_that_does_not_exist_is_refused_with_its_bounds(bad: tuple[int, int]) -> None:
    with pytest.raises(ValueError, match="partition"):
        Partition(*bad)


def test_the_live_replicas_split_the_partitions_with_none_left_over_and_none_shared() -> None:
    for count in range(1, 10):
        replicas = [f"r{n}" for n in range(count)]
        shares = [assigned(8, replicas, replica) for replica in replicas]
        assert sorted(index for share in shares for index in share) == list(range(8))
        assert max(map(len, shares)) - min(map(len, shares)) <= 1


class FakeRunner:
    """A partition runtime that 'holds' its partition in a shared ledger while it runs."""

    def __init__(self, partition: Partition, owner: str, ledger: dict[int, str], lock: threading.Lock) -> None:
        self.partition = partition
        self._owner, self._ledger, self._lock = owner, ledger, lock
        self._alive = False
        self.finished_idle = False

    def start(self) -> None:
        with self._lock:
            if self._ledger.get(self.partition.index) not in (None, self._owner):
                return  # the lease is another replica's: this runner ends at once
            self._ledger[self.partition.index] = self._owner
            self._alive = True

    def stop(self) -> None:
        with self._lock:
            if self._alive and self._ledger.get(self.partition.index) == self._owner:
                del self._ledger[self.partition.index]
            self._alive = False

    def is_alive(self) -> bool:
        return self._alive

    def join(self, timeout: float | None = None) -> None:
        return None


class Replicas:
    def __init__(self, partitions: int = 8) -> None:
        self.now = 0.0
        self.membership = InMemoryMembership(clock_s=lambda: self.now)
        self.ledger: dict[int, str] = {}
        self.lock = threading.Lock()
        self.partitions = partitions

    def replica(self, name: str) -> ReplicaSupervisor:
        return ReplicaSupervisor(
            ReplicaSettings("legacy", self.partitions, lease_ttl_s=3.0), self.membership,
            lambda partition: FakeRunner(partition, name, self.ledger, self.lock), replica_id=name)


def settle(*replicas: ReplicaSupervisor, rounds: int = 3) -> None:
    for _ in range(rounds):
        for replica in replicas:
            replica.rebalance()


def test_a_joining_replica_takes_half_and_every_partition_keeps_exactly_one_owner() -> None:
    world = Replicas()
    first = world.replica("a")
    first.rebalance()
    assert first.owned == set(range(8))
    second = world.replica("b")
    settle(first, second)
    assert first.owned | second.owned == set(range(8)) and not first.owned & second.owned
    assert len(first.owned) == len(second.owned) == 4
    assert {index: owner for index, owner in world.ledger.items()} == {
        **{index: "a" for index in first.owned}, **{index: "b" for index in second.owned}}


def test_a_dead_replicas_partitions_move_once_its_membership_expires() -> None:
    world = Replicas()
    alive, dying = world.replica("a"), world.replica("b")
    settle(alive, dying)
    orphaned = set(dying.owned)
    with world.lock:  # SIGKILL: its leases expire, nothing releases them politely
        for index in orphaned:
            del world.ledger[index]
    world.now += 1.0
    alive.rebalance()
    assert not alive.owned & orphaned, "moved before the dead replica's membership expired"
    world.now += 3.0
    settle(alive)
    assert alive.owned == set(range(8))


def test_a_replica_that_leaves_hands_its_partitions_over_at_once() -> None:
    world = Replicas()
    staying, leaving = world.replica("a"), world.replica("b")
    settle(staying, leaving)
    leaving.request_stop()
    leaving.run()  # stopping: stops its runners and leaves the membership
    settle(staying)
    assert staying.owned == set(range(8)) and world.ledger == {index: "a" for index in range(8)}
