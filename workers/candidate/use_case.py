"""The ClusterSignal use case: allocate each signal to a cluster and publish the outcome. No I/O."""

from __future__ import annotations

from collections.abc import Sequence

from workers.candidate.domain.model import Cluster, PreparedSignal, SignalClustered, SignalReceived
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
        """Publishes exactly one event per signal, in order, and commits the batch's state once.

        If the batch fails as a whole, its state changes are rolled back before the error propagates,
        so the runtime can safely retry its signals one by one.
        """
        try:
            devices = {signal.meta.device_id for signal in signals}
            batch = self._clustering.prepare(signals, {device: self._repo.get_reference(device) for device in devices})
            for device_id, reference in batch.references.items():
                self._repo.set_reference(device_id, reference)
            for signal in batch.signals:
                try:
                    self.handle(signal)
                except Exception as exc:  # a bug on one signal must not cost the others their outcome
                    self._publisher.publish(SignalClustered.failed(signal.signal_id, signal.device_id, exc))
            self._repo.commit()
        except BaseException:
            self._repo.rollback()
            raise

    def handle(self, signal: PreparedSignal) -> None:
        device_id = signal.device_id
        scope = self._clustering.scope_of(device_id)
        past = self._repo.get_clusters(scope)
        allocation = self._clustering.allocate(signal, past)
        if allocation.decline_reason is not None:
            self._publisher.publish(SignalClustered.declined(signal.signal_id, device_id, allocation.decline_reason))
            return
        cluster = allocation.cluster
        if cluster is None:
            assert allocation.profile is not None  # a new cluster always carries its first profile
            number = len(past) + 1
            cluster = Cluster.found(self._ids.next_label(scope, number), scope, number, allocation.profile)
        if not cluster.is_default():
            self._repo.save_cluster(cluster)
        self._publisher.publish(SignalClustered(signal.signal_id, device_id, cluster.label, allocation.is_new))
