"""The ClusterSignal use case: allocate each signal of a batch to a cluster and publish the outcome. No I/O."""

from __future__ import annotations

from collections.abc import Sequence

from workers.candidate.domain.features import DEVICE_ID
from workers.candidate.domain.model import BatchClustered, PreparedBatch, SignalReceived
from workers.candidate.ports import (
    ClusterIdGenerator,
    ClusterRepository,
    SignalClusteredPublisher,
    SignalClustering,
)


class ClusterSignal:
    def __init__(
        self,
        publisher: SignalClusteredPublisher,
        clustering: SignalClustering,
        repo: ClusterRepository,
        ids: ClusterIdGenerator,
    ) -> None:
        self._publisher = publisher
        self._clustering = clustering
        self._repo = repo
        self._ids = ids

    def handle_batch(self, signals: Sequence[SignalReceived]) -> None:
        """Publishes one outcome for the batch (one answer per signal) and commits the batch's state once.

        Normal signals go to DEFAULT_LABEL and need nothing more; only anomalies are allocated. If the
        batch fails as a whole, its state changes are rolled back before the error propagates, so the
        runtime can safely retry its signals one by one.
        """
        try:
            devices = set(map(DEVICE_ID, signals))
            batch = self._clustering.prepare(signals, {device: self._repo.get_reference(device) for device in devices})
            for device_id, reference in batch.references.items():
                self._repo.set_reference(device_id, reference)
            outcome = BatchClustered(signals, declined=batch.declined)
            for scope, anomalies in self._by_scope(batch).items():
                self._allocate(scope, anomalies, batch, outcome)
            self._repo.commit()
        except BaseException:
            self._repo.rollback()
            raise
        self._publisher.publish(outcome)

    def _by_scope(self, batch: PreparedBatch) -> dict[str, list[int]]:
        """Each scope's anomalies, as positions in batch.anomalies; scopes never interact."""
        scope_of = {device_id: self._clustering.scope_of(device_id) for device_id in set(batch.device_ids)}
        scopes: dict[str, list[int]] = {}
        device_ids = batch.device_ids
        for position, index in enumerate(batch.anomalies):
            scopes.setdefault(scope_of[device_ids[index]], []).append(position)
        return scopes

    def _allocate(self, scope: str, anomalies: list[int], batch: PreparedBatch, outcome: BatchClustered) -> None:
        """Each anomaly of the scope joins or founds a cluster, in order; the scope's clusters are saved."""
        work = self._clustering.open(self._repo.get_clusters(scope))
        allocation = self._clustering.allocate(
            batch.profiles[anomalies], work, lambda number: self._ids.next_label(scope, number)
        )
        labels, indices = work.labels, [batch.anomalies[position] for position in anomalies]
        for index, cluster in zip(indices, allocation.clusters, strict=True):
            if cluster >= 0:
                outcome.labels[index] = labels[cluster]
        outcome.new.update(indices[position] for position in allocation.founded)
        for position, error in allocation.errors.items():
            outcome.fail(indices[position], error)
        if changed := work.changed():
            self._repo.save_clusters(work.result(), changed)
