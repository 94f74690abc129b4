"""Clusters of anomalous signals per device (or per fleet), and the event the candidate emits per signal."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from harness.contracts import DEFAULT_LABEL, SignalReceived
from workers.candidate.domain.settings import PROFILE_SIZE

Vector = npt.NDArray[np.float64]

__all__ = [
    "Allocation",
    "Cluster",
    "ClusterSet",
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
    number: int  # 1, 2, ... in creation order per device; 0 for the default cluster
    representative: tuple[float, ...]  # a profile; empty for the default cluster
    members: int = 1

    def is_default(self) -> bool:
        return self.number == 0

    @staticmethod
    def default(device_id: str) -> Cluster:
        return Cluster(DEFAULT_LABEL, device_id, 0, (), 0)

    @staticmethod
    def found(label: str, device_id: str, number: int, profile: Vector) -> Cluster:
        return Cluster(label, device_id, number, tuple(profile.tolist()), 1)

    def joined_by(self, profile: Vector, running_mean: bool) -> Cluster:
        """This cluster with one more member; its representative moves only for a running mean."""
        representative = self.representative
        if running_mean:
            mean = (np.array(representative) * self.members + profile) / (self.members + 1)
            representative = tuple(mean.tolist())
        return Cluster(self.label, self.device_id, self.number, representative, self.members + 1)


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


@dataclass(frozen=True)
class Allocation:
    """What the clustering decided for one signal; a new cluster still needs its label."""

    cluster: Cluster | None  # None for a new cluster or a declined signal
    is_new: bool = False
    profile: Vector | None = None  # set for a new cluster
    decline_reason: str | None = None

    @staticmethod
    def to(cluster: Cluster) -> Allocation:
        return Allocation(cluster)

    @staticmethod
    def new(profile: Vector) -> Allocation:
        return Allocation(None, True, profile)

    @staticmethod
    def declined(reason: str) -> Allocation:
        return Allocation(None, decline_reason=reason)


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
