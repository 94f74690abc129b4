"""Clusters of anomalous signals per device (or per fleet), and what the candidate decides for a batch."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from harness.contracts import DEFAULT_LABEL, SignalReceived
from workers.candidate.domain.settings import PROFILE_SIZE

Vector = npt.NDArray[np.float64]

__all__ = [
    "Allocation",
    "BatchClustered",
    "Cluster",
    "ClusterSet",
    "ClusterWork",
    "PreparedBatch",
    "SignalClustered",
    "SignalReceived",
]


@dataclass(frozen=True)
class PreparedBatch:
    """The batch stage's verdicts: a signal is normal unless it is declined or an anomaly."""

    device_ids: list[str]  # one per received signal, in order
    anomalies: list[int]  # the anomalies' indices, in order
    profiles: Vector  # one row per anomaly, in the same order
    declined: dict[int, str]  # index -> reason
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
    """A scope's clusters in creation order: labels, member counts and the stacked representatives
    (read-only), kept as columns so that a batch neither builds nor reads a Cluster per cluster."""

    device_id: str  # the scope, as in Cluster
    labels: tuple[str, ...] = ()
    members: tuple[int, ...] = ()
    representatives: Vector = field(default_factory=_no_representatives)

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def clusters(self) -> tuple[Cluster, ...]:
        rows = self.representatives.tolist()
        return tuple(
            Cluster(label, self.device_id, number, tuple(row), members)
            for number, (label, row, members) in enumerate(zip(self.labels, rows, self.members, strict=True), 1)
        )

    def with_cluster(self, cluster: Cluster) -> ClusterSet:
        """A new cluster (numbered len + 1) appended, or an existing one (same number) replaced."""
        index = cluster.number - 1
        if cluster.device_id != self.device_id or not 0 <= index <= len(self):
            raise ValueError(f"cluster {cluster.label!r} does not fit the clusters of {self.device_id!r}")
        row = np.array([cluster.representative], dtype=np.float64)
        if not self.labels:  # the profile's width is known only from the first cluster
            representatives = row
        else:
            representatives = np.vstack([self.representatives[:index], row, self.representatives[index + 1 :]])
        representatives.flags.writeable = False
        labels = (*self.labels[:index], cluster.label, *self.labels[index + 1 :])
        members = (*self.members[:index], cluster.members, *self.members[index + 1 :])
        return ClusterSet(self.device_id, labels, members, representatives)


GROWTH = 16  # rows added to a scope's matrix of representatives when it is full


class ClusterWork:
    """One scope's clusters while a batch runs: the representatives sit in one matrix, updated in place,
    so an anomaly costs a single distance computation. `result()` is the scope's clusters afterwards and
    `changed()` the numbers to save."""

    def __init__(self, past: ClusterSet, running_mean: bool) -> None:
        self.scope = past.device_id
        self._running_mean = running_mean
        self._labels = list(past.labels)
        self._members = list(past.members)
        self._matrix = past.representatives.copy()  # rows past len(self) are spare capacity
        self._changed: set[int] = set()

    def __len__(self) -> int:
        return len(self._labels)

    @property
    def representatives(self) -> Vector:
        return self._matrix[: len(self._labels)]

    @property
    def labels(self) -> list[str]:
        return self._labels

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

    def count_joins(self, clusters: Sequence[int], founders: Collection[int]) -> None:
        """What many `join`s do when representatives never move: each cluster in `clusters` (an index per
        anomaly; -1 for none) gains a member, except at the positions in `founders`, which founded it."""
        counts = Counter(clusters)
        for position in founders:
            counts[clusters[position]] -= 1
        counts.pop(-1, None)
        for index, joined in counts.items():
            if joined:
                self._members[index] += joined
                self._changed.add(index)

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

    def changed(self) -> list[int]:
        """The numbers (1-based) of the clusters founded or joined since the work began, in order."""
        return [index + 1 for index in sorted(self._changed)]

    def result(self) -> ClusterSet:
        representatives = self._matrix[: len(self._labels)].copy()
        representatives.flags.writeable = False
        return ClusterSet(self.scope, tuple(self._labels), tuple(self._members), representatives)


@dataclass
class Allocation:
    """Where a scope's anomalies went, in order: the index of the cluster each joined or founded (-1 if
    it could not found one: its error is in `errors`)."""

    clusters: list[int] = field(default_factory=list)
    founded: set[int] = field(default_factory=set)  # positions of the anomalies that founded their cluster
    errors: dict[int, Exception] = field(default_factory=dict)

    def found(self, position: int, work: ClusterWork, anomaly: Vector, label_of: Callable[[int], str]) -> bool:
        """Founds a cluster for the anomaly; a label that cannot be had fails this anomaly alone."""
        try:
            work.found(label_of(len(work) + 1), anomaly)
        except Exception as exc:  # a bug on one signal must not cost the others their outcome
            self.errors[position] = exc
            self.clusters.append(-1)
            return False
        self.founded.add(position)
        self.clusters.append(len(work) - 1)
        return True


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


@dataclass
class BatchClustered:
    """The outcome of a whole batch, one per signal: DEFAULT_LABEL unless the signal's index is in
    `labels` (an anomaly's cluster), `declined` or `failed`. Kept sparse: most signals are normal."""

    signals: Sequence[SignalReceived]
    labels: dict[int, str] = field(default_factory=dict)
    new: set[int] = field(default_factory=set)  # the anomalies that founded their cluster
    declined: dict[int, str] = field(default_factory=dict)
    failed: dict[int, tuple[str, str]] = field(default_factory=dict)  # error type and message

    def fail(self, index: int, error: Exception) -> None:
        self.labels.pop(index, None)
        self.new.discard(index)
        self.failed[index] = (type(error).__name__, str(error))

    def events(self) -> list[SignalClustered]:
        """The outcome signal by signal, in order."""
        events = []
        for index, signal in enumerate(self.signals):
            ids = (signal.signal_id, signal.meta.device_id)
            if index in self.failed:
                error_type, message = self.failed[index]
                events.append(SignalClustered(*ids, None, error_type=error_type, error_message=message))
            elif index in self.declined:
                events.append(SignalClustered(*ids, None, decline_reason=self.declined[index]))
            else:
                events.append(SignalClustered(*ids, self.labels.get(index, DEFAULT_LABEL), index in self.new))
        return events
