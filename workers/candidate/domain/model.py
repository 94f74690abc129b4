"""Clusters of anomalous signals per device (or per fleet), and the event the candidate emits per signal."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from harness.contracts import SignalReceived
from workers.candidate.domain.settings import PROFILE_SIZE

Vector = npt.NDArray[np.float64]

__all__ = [
    "Cluster",
    "ClusterSet",
    "ClusterWork",
    "PreparedBatch",
    "PreparedSignal",
    "SignalClustered",
    "SignalReceived",
]


@dataclass(frozen=True)
class PreparedSignal:
    """A signal after the batch stage: declined, normal (no profile), or an anomaly with its profile."""

    signal_id: str
    device_id: str
    profile: Vector | None = None  # mean, std, min, max, mean |diff| of its deviation; None if normal
    decline_reason: str | None = None


@dataclass(frozen=True)
class PreparedBatch:
    signals: list[PreparedSignal]  # one per received signal, in order
    references: dict[str, Vector]  # the devices whose reference moved, with their new reference


@dataclass(frozen=True)
class Cluster:
    label: str
    device_id: str  # its scope: the device, or SHARED_SCOPE when the fleet shares its clusters
    number: int  # 1, 2, ... in creation order per scope
    representative: tuple[float, ...]  # a profile
    members: int = 1


def _no_representatives() -> Vector:
    empty = np.empty((0, PROFILE_SIZE))
    empty.flags.writeable = False
    return empty


@dataclass(frozen=True)
class ClusterSet:
    """A scope's clusters in creation order, with their representatives stacked for matching."""

    device_id: str  # the scope, as in Cluster
    clusters: tuple[Cluster, ...] = ()
    representatives: Vector = field(default_factory=_no_representatives)

    def __len__(self) -> int:
        return len(self.clusters)

    def with_cluster(self, cluster: Cluster) -> ClusterSet:
        """A new cluster (numbered len + 1) appended, or an existing one (same number) replaced."""
        index = cluster.number - 1
        if cluster.device_id != self.device_id or not 0 <= index <= len(self.clusters):
            raise ValueError(f"cluster {cluster.label!r} does not fit the clusters of {self.device_id!r}")
        if index == len(self.clusters):
            if not self.clusters:  # the profile's width is known only from the first cluster
                representatives = np.array([cluster.representative], dtype=np.float64)
            else:
                representatives = np.vstack([self.representatives, cluster.representative])
            representatives.flags.writeable = False
            return ClusterSet(self.device_id, (*self.clusters, cluster), representatives)
        representatives = self.representatives
        if cluster.representative is not self.clusters[index].representative:
            representatives = representatives.copy()
            representatives[index] = cluster.representative
            representatives.flags.writeable = False
        clusters = (*self.clusters[:index], cluster, *self.clusters[index + 1 :])
        return ClusterSet(self.device_id, clusters, representatives)


GROWTH = 16  # rows added to a scope's matrix of representatives when it is full


class ClusterWork:
    """One scope's clusters while a batch runs: the representatives sit in one matrix, updated in place,
    so an anomaly costs a single distance computation. `changed()` says what to save at the batch's end."""

    def __init__(self, past: ClusterSet, running_mean: bool) -> None:
        self.scope = past.device_id
        self._running_mean = running_mean
        self._labels = [cluster.label for cluster in past.clusters]
        self._members = [cluster.members for cluster in past.clusters]
        self._matrix = past.representatives.copy()  # rows past len(self) are spare capacity
        self._changed: set[int] = set()

    def __len__(self) -> int:
        return len(self._labels)

    @property
    def representatives(self) -> Vector:
        return self._matrix[: len(self._labels)]

    def join(self, index: int, profile: Vector) -> str:
        """Adds a member to cluster `index` (0-based); its representative moves only for a running mean."""
        members = self._members[index]
        if self._running_mean:  # (representative * members + profile) / (members + 1), in place
            representative = self._matrix[index]
            representative *= members
            representative += profile
            representative /= members + 1
        self._members[index] = members + 1
        self._changed.add(index)
        return self._labels[index]

    def found(self, label: str, profile: Vector) -> None:
        count = len(self._labels)
        if count == self._matrix.shape[0] or self._matrix.shape[1] != profile.shape[0]:
            grown = np.empty((count + GROWTH, profile.shape[0]))
            if count:  # raises if the widths differ: a profile unlike the scope's clusters
                grown[:count] = self._matrix[:count]
            self._matrix = grown
        self._matrix[count] = profile
        self._labels.append(label)
        self._members.append(1)
        self._changed.add(count)

    def changed(self) -> list[Cluster]:
        """The clusters founded or joined since the work began, in number order."""
        return [
            Cluster(self._labels[i], self.scope, i + 1, tuple(self._matrix[i].tolist()), self._members[i])
            for i in sorted(self._changed)
        ]


@dataclass(frozen=True)
class SignalClustered:
    """The outcome for one signal: a cluster label, a decline reason, or an unexpected error."""

    signal_id: str
    device_id: str
    label: str | None
    is_new: bool = False
    decline_reason: str | None = None
    error_type: str | None = None
    error_message: str | None = None

    @staticmethod
    def declined(signal_id: str, device_id: str, reason: str) -> SignalClustered:
        return SignalClustered(signal_id, device_id, None, decline_reason=reason)

    @staticmethod
    def failed(signal_id: str, device_id: str, error: Exception) -> SignalClustered:
        return SignalClustered(signal_id, device_id, None, error_type=type(error).__name__, error_message=str(error))
