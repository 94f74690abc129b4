"""Legacy per-device state: a Redis hash per device holding JSON, or the same JSON kept in memory."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Protocol

from harness.partitions import Partition
from harness.transport.keys import device_state_key


@dataclass
class StoredCluster:
    label: str
    profile: list[float]
    members: int


@dataclass
class DeviceState:
    reference: list[float] | None = None  # smoothed vector of the device's last normal signal
    clusters: list[StoredCluster] = field(default_factory=list)  # in creation order


class DeviceStore(Protocol):
    def load(self, device_id: str) -> DeviceState: ...

    def save(self, device_id: str, state: DeviceState) -> None: ...


def _encode(state: DeviceState) -> dict[str, str]:
    return {
        "reference": json.dumps(state.reference),
        "clusters": json.dumps([[c.label, c.profile, c.members] for c in state.clusters]),
    }


def _decode(reference: Any, clusters: Any) -> DeviceState:
    if reference is None and clusters is None:
        return DeviceState()
    return DeviceState(
        reference=json.loads(reference) if reference is not None else None,
        clusters=[StoredCluster(label, profile, members) for label, profile, members in json.loads(clusters)]
        if clusters is not None
        else [],
    )


class RedisDeviceStore:
    """One round trip to read and one to write per signal: simple, and slow on purpose."""

    def __init__(self, redis: Any, worker_name: str, partition: Partition | None = None) -> None:
        self._redis = redis
        self._worker = worker_name
        self._partition = partition

    def load(self, device_id: str) -> DeviceState:
        key = device_state_key(self._worker, device_id, self._partition)
        reference, clusters = self._redis.hmget(key, ["reference", "clusters"])
        return _decode(reference, clusters)

    def save(self, device_id: str, state: DeviceState) -> None:
        self._redis.hset(device_state_key(self._worker, device_id, self._partition), mapping=_encode(state))


class MemoryDeviceStore:
    """The same JSON, in a dict: for an in-process backtest without Redis."""

    def __init__(self) -> None:
        self._devices: dict[str, dict[str, str]] = {}

    def load(self, device_id: str) -> DeviceState:
        stored = self._devices.get(device_id)
        return _decode(stored["reference"], stored["clusters"]) if stored else DeviceState()

    def save(self, device_id: str, state: DeviceState) -> None:
        self._devices[device_id] = _encode(state)
