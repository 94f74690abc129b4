"""The ports of the candidate's use case: small abstract classes the adapters implement."""

from __future__ import annotations

import abc
from collections.abc import Callable, Mapping, Sequence

from workers.candidate.domain.model import (
    Allocation,
    BatchClustered,
    ClusterSet,
    ClusterWork,
    PreparedBatch,
    SignalReceived,
    Vector,
)


class ClusterRepository(abc.ABC):
    """Per-device references (smoothed vector of the last normal signal) and the clusters of each
    scope (a device id, or SHARED_SCOPE when the fleet shares its clusters)."""

    @abc.abstractmethod
    def get_clusters(self, scope: str) -> ClusterSet: ...

    @abc.abstractmethod
    def save_clusters(self, clusters: ClusterSet, changed: Sequence[int]) -> None:
        """A scope's clusters after a batch; `changed` numbers (1-based) those founded or joined."""

    @abc.abstractmethod
    def get_reference(self, device_id: str) -> Vector | None: ...

    @abc.abstractmethod
    def set_reference(self, device_id: str, reference: Vector) -> None: ...

    @abc.abstractmethod
    def commit(self) -> None:
        """Make the batch's changes durable; if that fails, roll back and raise."""

    @abc.abstractmethod
    def rollback(self) -> None:
        """Forget every change since the last commit."""


class SignalClustering(abc.ABC):
    """The algorithm: `prepare` a whole batch at once, then `allocate` a scope's anomalies in stream order
    to the clusters of the scope, `open`ed for the batch."""

    @abc.abstractmethod
    def prepare(self, signals: Sequence[SignalReceived], references: Mapping[str, Vector | None]) -> PreparedBatch:
        """Screens the batch against each device's reference (given for every device in it)."""

    @abc.abstractmethod
    def scope_of(self, device_id: str) -> str:
        """Whose clusters a device's anomalies join: the device's own, or a scope shared by many."""

    @abc.abstractmethod
    def open(self, past: ClusterSet) -> ClusterWork:
        """A scope's clusters, ready to be matched, joined and founded during one batch."""

    @abc.abstractmethod
    def allocate(self, anomalies: Vector, work: ClusterWork, label_of: Callable[[int], str]) -> Allocation:
        """Each anomaly (a row), in order, joins a cluster of `work` or founds one labelled `label_of(number)`."""


class SignalClusteredPublisher(abc.ABC):
    @abc.abstractmethod
    def publish(self, outcome: BatchClustered) -> None: ...


class ClusterIdGenerator(abc.ABC):
    @abc.abstractmethod
    def next_label(self, device_id: str, number: int) -> str:
        """The label of the device's `number`-th cluster (1-based), stable across restarts."""
