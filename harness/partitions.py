"""The input partitioned by device: P partitions, each processed in order on its own.

Clusters belong to a device, so order matters only within a device: a stable hash of the device
picks its partition. With P > 1 every key of a partition carries the partition's Redis Cluster
hash tag (`{p3}`), so its keys share one slot and one script may touch them all; P = 1 keeps the
unpartitioned key names of a single Redis.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

DEFAULT_PARTITIONS = 1
MAX_PARTITIONS = 1024  # far beyond what replicas can use; it bounds the keys a status scan reads


@dataclass(frozen=True, order=True)
class Partition:
    index: int
    count: int

    def __post_init__(self) -> None:
        check_partition_count(self.count)
        if not 0 <= self.index < self.count:
            raise ValueError(f"partition {self.index} does not exist: there are {self.count} (0 to {self.count - 1})")

    @property
    def tag(self) -> str | None:
        """The Redis Cluster hash tag of this partition's keys; None when the input is not partitioned."""
        return None if self.count == 1 else f"{{p{self.index}}}"

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def check_partition_count(count: int) -> int:
    if not 1 <= count <= MAX_PARTITIONS:
        raise ValueError(f"partitions: {count} is not between 1 and {MAX_PARTITIONS}")
    return count


def all_partitions(count: int) -> list[Partition]:
    return [Partition(index, check_partition_count(count)) for index in range(count)]


def partition_index(device_id: str, count: int) -> int:
    """The partition of a device: CRC-32 of its UTF-8 name, modulo P (the same in every process and version)."""
    if count == 1:
        return 0
    return zlib.crc32(device_id.encode("utf-8", "backslashreplace")) % count


def partition_of(device_id: str, count: int) -> Partition:
    return Partition(partition_index(device_id, count), count)
