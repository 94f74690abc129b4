"""Redis repository: a per-device hash, cached in memory once read, written in one pipeline per batch."""

from __future__ import annotations

import functools
import json
import struct
from collections.abc import Sequence
from typing import Any

import numpy as np

from harness.partitions import Partition
from harness.transport.keys import device_state_key
from workers.candidate.adapters.memory import InMemoryClusterRepository
from workers.candidate.domain.model import ClusterSet, Vector

REFERENCE_FIELD = b"reference"  # float64 little-endian bytes of the smoothed reference vector
CLUSTER_PREFIX = "cluster:"  # cluster:{number}: encode_cluster's bytes, or (written before them) JSON
# A cluster's bytes: format 1, members, width, then the representative (float64) and the label (UTF-8).
CLUSTER_HEADER = struct.Struct("<BQI")
CLUSTER_FORMAT = 1
PACKED_FROM = 8  # a device's changed clusters from which they are encoded together


class StateError(RuntimeError):
    """The state stored in Redis cannot be read back; names the key."""


def encode_cluster(label: str, members: int, representative: Vector) -> bytes:
    head = CLUSTER_HEADER.pack(CLUSTER_FORMAT, members, representative.shape[0])
    return b"".join((head, representative.astype("<f8", copy=False).tobytes(), label.encode()))


def encode_clusters(labels: Sequence[str], members: Sequence[int], representatives: Vector) -> list[bytes]:
    """encode_cluster of each row, to the byte; many rows are packed by a few numpy calls (which cost more
    than a handful of encode_cluster calls)."""
    count, width = representatives.shape
    if count < PACKED_FROM:
        return [encode_cluster(labels[k], members[k], representatives[k]) for k in range(count)]
    packed = np.empty(count, _packed_cluster(width))
    packed["head"], packed["members"], packed["width"], packed["row"] = CLUSTER_FORMAT, members, width, representatives
    blob, size = packed.tobytes(), packed.dtype.itemsize
    return [blob[k * size : (k + 1) * size] + label.encode() for k, label in enumerate(labels)]


@functools.cache
def _packed_cluster(width: int) -> np.dtype[np.void]:
    """encode_cluster's bytes but the label, as a numpy record (packed: no padding)."""
    return np.dtype([("head", "u1"), ("members", "<u8"), ("width", "<u4"), ("row", "<f8", width)])


def decode_cluster(value: bytes) -> tuple[str, Vector, int]:
    """(label, representative, members) from encode_cluster's bytes or the older JSON list."""
    if value[:1] == b"[":  # JSON [label, representative, members]: state written before format 1
        label, representative, members = json.loads(value)
        return str(label), np.array(representative, dtype=np.float64), int(members)
    kind, members, width = CLUSTER_HEADER.unpack_from(value)
    end = CLUSTER_HEADER.size + 8 * width
    if kind != CLUSTER_FORMAT or len(value) < end:
        raise ValueError(f"not a cluster of format {CLUSTER_FORMAT}")
    return value[end:].decode(), np.frombuffer(value, "<f8", width, CLUSTER_HEADER.size).astype(np.float64), members


class RedisClusterRepository(InMemoryClusterRepository):
    """Write-through: this worker is the only writer of its keys, so the cache never goes stale."""

    def __init__(self, redis: Any, worker_name: str, partition: Partition | None = None) -> None:
        super().__init__()
        self._redis = redis
        self._worker = worker_name
        self._partition = partition
        self._loaded: set[str] = set()
        self._dirty_references: set[str] = set()
        self._dirty_clusters: dict[str, set[int]] = {}  # scope -> numbers changed since the last commit
        self._field_names: list[bytes] = [b""]  # [number]: the hash field of cluster `number`

    def get_clusters(self, device_id: str) -> ClusterSet:
        if device_id not in self._loaded:
            self._load(device_id)
        return super().get_clusters(device_id)

    def save_clusters(self, clusters: ClusterSet, changed: Sequence[int]) -> None:
        if clusters.device_id not in self._loaded:
            self._load(clusters.device_id)
        super().save_clusters(clusters, changed)
        self._dirty_clusters.setdefault(clusters.device_id, set()).update(changed)

    def get_reference(self, device_id: str) -> Vector | None:
        if device_id not in self._loaded:
            self._load(device_id)
        return super().get_reference(device_id)

    def set_reference(self, device_id: str, reference: Vector) -> None:
        if device_id not in self._loaded:
            self._load(device_id)
        super().set_reference(device_id, reference)
        self._dirty_references.add(device_id)

    def commit(self) -> None:
        """One MULTI/EXEC for the whole batch, so a crash leaves either all of it or none of it."""
        devices = self._dirty_references | self._dirty_clusters.keys()
        if not devices:
            return
        pipe = self._redis.pipeline(transaction=True)
        for device_id in devices:
            fields: list[bytes] = []
            if device_id in self._dirty_references:
                reference = super().get_reference(device_id)
                assert reference is not None
                fields += (REFERENCE_FIELD, reference.astype("<f8").tobytes())
            if numbers := sorted(self._dirty_clusters.get(device_id, ())):
                fields += self._cluster_fields(super().get_clusters(device_id), numbers)
            pipe.execute_command("HSET", device_state_key(self._worker, device_id, self._partition), *fields)
        try:
            pipe.execute()
        except Exception:
            self.rollback()
            raise
        self._dirty_references.clear()
        self._dirty_clusters.clear()

    def _cluster_fields(self, clusters: ClusterSet, numbers: list[int]) -> list[bytes]:
        """Field name and encoded value of each numbered cluster, one after the other (as HSET takes them)."""
        rows = [number - 1 for number in numbers]
        labels, members = [clusters.labels[row] for row in rows], [clusters.members[row] for row in rows]
        values = encode_clusters(labels, members, clusters.representatives[rows])
        names = self._field_names
        while len(names) <= numbers[-1]:
            names.append(f"{CLUSTER_PREFIX}{len(names)}".encode())
        return [part for number, value in zip(numbers, values, strict=True) for part in (names[number], value)]

    def rollback(self) -> None:
        """Drops the whole cache: after a failed write, only Redis knows what was saved."""
        self._clusters.clear()
        self._references.clear()
        self._loaded.clear()
        self._dirty_references.clear()
        self._dirty_clusters.clear()

    def _load(self, device_id: str) -> None:
        key = device_state_key(self._worker, device_id, self._partition)
        stored: dict[bytes, bytes] = self._redis.hgetall(key)
        try:
            numbered = sorted(
                (int(field.split(b":", 1)[1]), value) for field, value in stored.items() if field != REFERENCE_FIELD
            )
            if [number for number, _ in numbered] != list(range(1, len(numbered) + 1)):
                raise ValueError("the clusters are not numbered 1, 2, ...")
            decoded = [decode_cluster(value) for _, value in numbered]
            clusters = ClusterSet(device_id)
            if decoded:
                representatives = np.stack([representative for _, representative, _ in decoded])
                representatives.flags.writeable = False
                labels = tuple(label for label, _, _ in decoded)
                clusters = ClusterSet(device_id, labels, tuple(m for _, _, m in decoded), representatives)
        except (ValueError, TypeError, IndexError, struct.error) as exc:
            raise StateError(f"cannot read the clusters stored in {key}: {exc}") from None
        self._clusters[device_id] = clusters
        if REFERENCE_FIELD in stored:
            reference = np.frombuffer(stored[REFERENCE_FIELD], dtype="<f8")
            self._references[device_id] = reference
        self._loaded.add(device_id)
